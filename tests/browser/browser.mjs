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
