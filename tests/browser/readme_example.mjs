// The manual's browser example (docs/security.md, `// readme-example: browser`), run as a reader
// runs it: open the console at /, paste TOKEN into its token field, then run the example in the
// page as the developer console would (it is evaluated in the page, not changed). What the page
// logs with console.log is the example's output; it is done when every WebSocket it opened has
// closed. Prints a JSON report {printed: [...]} (tests/readme_examples.rs compares it).
// Usage: node readme_example.mjs http://HOST:PORT TOKEN EXAMPLE.js
import { readFileSync } from 'node:fs';

import { baseUrl, check, launch, run } from './browser.mjs';

const base = baseUrl();
const [token, file] = process.argv.slice(3);
const WAIT = { timeout: 20_000 };

await run(async (report) => {
  check(Boolean(token) && Boolean(file), 'a token and an example file are given');
  const example = readFileSync(file, 'utf8');
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (error) => errors.push(String(error)));
    await page.goto(`${base}/`);
    await page.locator('#status', { hasText: /^disconnected$/ }).waitFor(WAIT);
    await page.fill('#token', token);
    await page.locator('#token').blur();
    await page.locator('#log li', { hasText: 'token saved' }).waitFor(WAIT);

    // From here on: the example's logs and its WebSockets (the console opens none of its own
    // after a token is saved while it is disconnected).
    report.printed = [];
    page.on('console', (message) => {
      if (message.type() === 'log') report.printed.push(message.text());
    });
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(new Promise((resolve) => ws.on('close', resolve))));
    await page.evaluate(example);
    const deadline = Date.now() + WAIT.timeout;
    while (sockets.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    check(sockets.length > 0, 'the example opened a WebSocket');
    await Promise.race([
      Promise.all(sockets),
      new Promise((_, reject) => setTimeout(() => reject(new Error('the example\'s WebSocket stayed open')), WAIT.timeout)),
    ]);
    // Logs of the last frame reach this process asynchronously.
    await new Promise((resolve) => setTimeout(resolve, 300));
    report.page_errors = errors;
    check(errors.length === 0, `no script errors: ${errors}`);
  } finally {
    await browser.close();
  }
});
