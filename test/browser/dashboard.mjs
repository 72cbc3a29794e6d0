// Drives the dashboard in Debian's headless chromium for TAP test
// 055_dashboard: opens the page, sees a queue and a running job's progress,
// clicks Retry on a failed job and sees it run again, opens its detail, and
// saves screenshots.  Prints one "ok <step>" line per step passed; exits 1
// with "not ok <step>: <why>" at the first step that fails.
//
// Environment: DASH_URL, DASH_USER, DASH_PASSWORD, DASH_QUEUE (a queue the
// page must list), DASH_RUNNING_ID and DASH_PROGRESS (a running job and
// text its progress shows), DASH_FAILED_ID (a failed job that succeeds
// when retried), DASH_OUTPUT (where screenshots go), DASH_TIMEOUT (seconds
// a step may wait, 180 by default).
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = process.env;
// each step's wait: generous, as CI machines are loaded
const timeout = (Number(env.DASH_TIMEOUT) || 180) * 1000;
const profile = mkdtempSync(join(tmpdir(), 'jq_dashboard_chromium.'));
let context;
let step = 'launch chromium';

async function run() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    httpCredentials: { username: env.DASH_USER, password: env.DASH_PASSWORD },
    viewport: { width: 1400, height: 1000 },
    timeout,
  });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(timeout);
  const pageErrors = [];
  const elsewhere = [];
  const origin = new URL(env.DASH_URL).origin;
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('request', (r) => { if (new URL(r.url()).origin !== origin) elsewhere.push(r.url()); });
  console.log('ok ' + step);

  step = 'open the page';
  await page.goto(env.DASH_URL);
  await page.locator('#status.live').waitFor();
  console.log('ok ' + step);

  step = 'see queue ' + env.DASH_QUEUE;
  await page.locator(`#queues tr[data-queue="${env.DASH_QUEUE}"]`).waitFor();
  console.log('ok ' + step);

  step = `see running job ${env.DASH_RUNNING_ID} with progress "${env.DASH_PROGRESS}"`;
  await page.locator(`#running tr[data-job-id="${env.DASH_RUNNING_ID}"] .progress-cell`,
                     { hasText: env.DASH_PROGRESS }).waitFor();
  console.log('ok ' + step);

  step = 'draw the charts';
  await page.waitForFunction(() => ['chart-depth', 'chart-rate', 'chart-latency'].every((id) => {
    const c = document.getElementById(id);
    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    // some pixel painted: grid lines and labels at least
    return px.some((v, i) => i % 4 === 3 && v !== 0);
  }));
  console.log('ok ' + step);

  step = `see failed job ${env.DASH_FAILED_ID} with its error`;
  const failed = page.locator(`#failed tr[data-job-id="${env.DASH_FAILED_ID}"]`);
  await failed.locator('ol.errors li').first().waitFor();
  console.log('ok ' + step);
  await page.screenshot({ path: join(env.DASH_OUTPUT, 'dashboard.png'), fullPage: true });

  step = `retry job ${env.DASH_FAILED_ID} and see it succeed`;
  await failed.locator('button.retry').click();
  await page.locator('#flash.ok', { hasText: 'queued again' }).waitFor();
  await page.locator(`#recent tr[data-job-id="${env.DASH_FAILED_ID}"][data-state="succeeded"]`).waitFor();
  await failed.waitFor({ state: 'detached' });
  console.log('ok ' + step);

  step = `open job ${env.DASH_FAILED_ID}'s detail`;
  await page.locator(`#recent tr[data-job-id="${env.DASH_FAILED_ID}"] a.job-link`).click();
  await page.locator('#detail-state', { hasText: 'succeeded' }).waitFor();
  await page.locator('#detail table.attempts tbody tr').first().waitFor();
  console.log('ok ' + step);
  await page.screenshot({ path: join(env.DASH_OUTPUT, 'dashboard_job.png') });

  step = 'no script error on the page';
  if (pageErrors.length)
    throw new Error(pageErrors.join('; '));
  console.log('ok ' + step);

  step = 'no request to anywhere but the dashboard';
  if (elsewhere.length)
    throw new Error(elsewhere.join(' '));
  console.log('ok ' + step);
}

try {
  await run();
} catch (e) {
  console.log(`not ok ${step}: ${e.message.split('\n')[0]}`);
  process.exitCode = 1;
} finally {
  if (context)
    await context.close();
  rmSync(profile, { recursive: true, force: true });
}
