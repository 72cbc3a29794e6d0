#!/bin/sh
# Write the C file that embeds the page's files in jq_dashboard:
#   embed.sh web/index.html web/app.js web/app.css > assets.c
# Each file is served at /<its name>, with a content type from its suffix.
set -eu
echo '/* the files of jq_dashboard'"'"'s page, made by embed.sh: do not edit */'
echo '#include "jq_dashboard.h"'
n=0
for f in "$@"; do
	echo "static const unsigned char embed_$n[] = {"
	# a NUL after the bytes, so that the text can be searched as a string
	od -An -v -tx1 "$f" | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'
	echo "0x00};"
	n=$((n + 1))
done
echo 'const DashAsset dash_assets[] = {'
n=0
for f in "$@"; do
	case "$f" in
		*.html) type='text/html; charset=utf-8' ;;
		*.js) type='text/javascript; charset=utf-8' ;;
		*.css) type='text/css; charset=utf-8' ;;
		*.svg) type='image/svg+xml' ;;
		*) type='application/octet-stream' ;;
	esac
	echo "	{\"/$(basename "$f")\", \"$type\", embed_$n, sizeof(embed_$n) - 1},"
	n=$((n + 1))
done
echo '};'
echo "const int dash_asset_count = $n;"
