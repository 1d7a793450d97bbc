// Shared by the browser scripts: launch Debian's Chromium with playwright-core, and fail loudly.
import { chromium } from 'playwright-core';

// Without the networking flags Chromium keeps trying to reach Google's hosts, which this
// machine's closed network refuses; Playwright itself adds --headless and --no-sandbox.
const FLAGS = [
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: FLAGS,
    timeout: 60_000,
  });
}

/** The base URL given as the first argument, without a trailing slash. */
export function baseUrl() {
  const base = process.argv[2];
  if (!base) {
    console.error(`usage: node ${process.argv[1]} http://HOST:PORT`);
    process.exit(2);
  }
  return base.replace(/\/$/, '');
}

export function check(condition, what) {
  if (!condition) {
    throw new Error(`check failed: ${what}`);
  }
}

/** Runs `main`, prints its report as JSON, and exits 1 on any error (with the report so far). */
export async function run(main) {
  const report = {};
  try {
    await main(report);
    console.log(JSON.stringify(report, null, 2));
  } catch (error) {
    console.log(JSON.stringify(report, null, 2));
    console.error(error?.stack ?? String(error));
    process.exit(1);
  }
}

/** Expands an operation, presses "Try it out", lets `edit` fill it in, presses "Execute" and
 * returns the status and body Swagger UI shows for the live response. */
export async function tryItOut(page, op, edit = async () => {}) {
  const block = page.locator(`#operations-${op.tag}-${op.id}`);
  if (!(await block.locator('.opblock-body').first().isVisible())) {
    await block.locator('.opblock-summary-control').click();
  }
  // The body renders after the click: wait for its try-out button before reading its state.
  await block.locator('.try-out__btn').first().waitFor({ timeout: 15_000 });
  const tryOut = block.locator('.try-out__btn', { hasText: 'Try it out' });
  if ((await tryOut.count()) > 0) {
    await tryOut.click();
  }
  await block.locator('.btn.execute').waitFor({ timeout: 15_000 });
  await edit(block);
  // Clear the previous live response, so the one read below is the new one.
  const clear = block.locator('.btn-clear');
  if ((await clear.count()) > 0) {
    await clear.click();
  }
  await block.locator('.btn.execute').click();
  const live = block.locator('.live-responses-table');
  const status = live.locator('tbody .response-col_status').first();
  await status.waitFor({ timeout: 15_000 });
  const text = await live.locator('.response-col_description pre.microlight').first().textContent();
  return { status: Number((await status.textContent()).trim()), body: JSON.parse(text) };
}
