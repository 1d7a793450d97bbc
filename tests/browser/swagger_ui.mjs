// Swagger UI at /docs in headless Chromium: it lists every operation of the live OpenAPI
// document, and "Try it out" + "Execute" on GET /topics and POST /topics show what the server
// really answered (checked against plain REST calls made beside the browser).
// Usage: node swagger_ui.mjs http://HOST:PORT   (prints a JSON report; exit 0 = all checks passed)
import { baseUrl, check, launch, run, tryItOut } from './browser.mjs';

const base = baseUrl();
const TOPIC = 'from-swagger-ui';

async function rest(method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

/** Every operation in the document as { method, path, tag, id }. */
function operationsOf(spec) {
  const methods = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
  return Object.entries(spec.paths).flatMap(([path, item]) =>
    methods
      .filter((m) => item[m])
      .map((m) => ({ method: m.toUpperCase(), path, tag: item[m].tags[0], id: item[m].operationId })),
  );
}

await run(async (report) => {
  const spec = await (await fetch(`${base}/api-doc/openapi.json`)).json();
  const operations = operationsOf(spec);
  check(operations.length > 0, 'the document has operations');

  const browser = await launch();
  report.browser = browser.version();
  try {
    const page = await browser.newPage();
    const response = await page.goto(`${base}/docs`);
    check(response.ok(), `GET /docs answered ${response.status()}`);
    report.url = page.url();
    await page.locator('.information-container .title').waitFor({ timeout: 15_000 });
    report.title = (await page.locator('.information-container .title').textContent()).trim();
    check(report.title.startsWith(spec.info.title), `title shows ${spec.info.title}`);
    // The landing text links the AsyncAPI document and the console.
    const description = page.locator('.information-container .description');
    report.landing_links = await description
      .locator('a')
      .evaluateAll((links) => links.map((a) => a.getAttribute('href')));

    report.operations = [];
    for (const op of operations) {
      const block = page.locator(`#operations-${op.tag}-${op.id}`);
      await block.waitFor({ timeout: 15_000 });
      const shown = (await block.locator('.opblock-summary-path').getAttribute('data-path')) ?? '';
      const method = (await block.locator('.opblock-summary-method').textContent()).trim();
      check(shown === op.path && method === op.method, `${op.id} shows ${op.method} ${op.path}`);
      report.operations.push(op.id);
    }

    // GET /topics: what the UI shows is what the server lists.
    await rest('POST', '/topics', { name: 'listed-before' });
    const list = operations.find((o) => o.method === 'GET' && o.path === '/topics');
    report.list_topics = await tryItOut(page, list);
    const listed = await rest('GET', '/topics');
    check(report.list_topics.status === 200, 'GET /topics shows 200');
    check(
      JSON.stringify(report.list_topics.body) === JSON.stringify(listed.body),
      'GET /topics shows the server\'s list',
    );

    // POST /topics: the UI shows 201 and the topic really exists afterwards.
    const create = operations.find((o) => o.method === 'POST' && o.path === '/topics');
    const fill = async (block) => {
      await block.locator('textarea.body-param__text').fill(JSON.stringify({ name: TOPIC }));
    };
    report.create_topic = await tryItOut(page, create, fill);
    check(report.create_topic.status === 201, 'POST /topics shows 201');
    check(report.create_topic.body.name === TOPIC, 'POST /topics shows the new topic');
    report.created = await rest('GET', `/topics/${TOPIC}`);
    check(report.created.status === 200, 'the topic exists after the UI created it');

    // The same request again: the UI shows the server's 409 topic_exists.
    report.create_again = await tryItOut(page, create, fill);
    check(report.create_again.status === 409, 'creating it again shows 409');
    check(report.create_again.body.error?.code === 'topic_exists', 'and topic_exists');
  } finally {
    await browser.close();
  }
});
