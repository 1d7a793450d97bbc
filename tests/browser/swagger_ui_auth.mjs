// Swagger UI's Authorize button against a server that requires tokens: POST /topics without a
// token shows 401 unauthorized; after entering a token under "Authorize", the same request
// shows 201 and the topic exists.
// Usage: node swagger_ui_auth.mjs http://HOST:PORT TOKEN   (prints a JSON report; exit 0 = passed)
import { baseUrl, check, launch, run, tryItOut } from './browser.mjs';

const base = baseUrl();
const token = process.argv[3];
const TOPIC = 'authorized-in-swagger-ui';

await run(async (report) => {
  check(Boolean(token), 'a token is given');
  const spec = await (await fetch(`${base}/api-doc/openapi.json`)).json();
  const create = { method: 'POST', path: '/topics', tag: 'topics', id: 'create_topic' };
  check(spec.paths['/topics'].post.operationId === create.id, 'create_topic is POST /topics');

  const browser = await launch();
  report.browser = browser.version();
  try {
    const page = await browser.newPage();
    await page.goto(`${base}/docs/`);
    await page.locator(`#operations-${create.tag}-${create.id}`).waitFor({ timeout: 15_000 });
    const fill = async (block) => {
      await block.locator('textarea.body-param__text').fill(JSON.stringify({ name: TOPIC }));
    };

    // Without a token: the server's 401, as Swagger UI shows it.
    report.without_token = await tryItOut(page, create, fill);
    check(report.without_token.status === 401, 'POST /topics without a token shows 401');
    check(report.without_token.body.error?.code === 'unauthorized', 'and unauthorized');

    // Authorize: the dialog lists the bearer scheme; enter the token and confirm.
    await page.locator('.auth-wrapper .btn.authorize').click();
    const dialog = page.locator('.modal-ux');
    await dialog.waitFor({ timeout: 15_000 });
    report.scheme = (await dialog.locator('.auth-container h4').first().textContent()).trim();
    await dialog.locator('.auth-container input').first().fill(token);
    await dialog.locator('.auth-btn-wrapper .btn.modal-btn.auth.authorize').click();
    await dialog.locator('.auth-btn-wrapper .btn-done').click();

    report.with_token = await tryItOut(page, create, fill);
    check(report.with_token.status === 201, 'POST /topics with the token shows 201');
    check(report.with_token.body.name === TOPIC, 'and the new topic');
    const created = await fetch(`${base}/topics/${TOPIC}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    report.created = created.status;
    check(created.status === 200, 'the topic exists after the UI created it');
  } finally {
    await browser.close();
  }
});
