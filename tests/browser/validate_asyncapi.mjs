// Validates an AsyncAPI document with the AsyncAPI parser and its default rules, and checks
// every message example against its payload schema (the parser's 3.0 rules do not).
// Usage: node validate_asyncapi.mjs URL_OR_FILE
// Prints a JSON report; exits 0 only when there is no error.
import { readFile } from 'node:fs/promises';
import { Parser } from '@asyncapi/parser';
import Ajv from 'ajv';

const source = process.argv[2];
if (!source) {
  console.error('usage: node validate_asyncapi.mjs URL_OR_FILE');
  process.exit(2);
}
const text = /^https?:/.test(source)
  ? await (await fetch(source)).text()
  : await readFile(source, 'utf8');

const { document, diagnostics } = await new Parser().parse(text);
// Spectral severities: 0 error, 1 warning, 2 information, 3 hint.
const names = ['error', 'warning', 'information', 'hint'];

// Payloads are JSON Schema draft 07 (the AsyncAPI schema format); `format: int64` is advisory.
const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
ajv.addSchema(JSON.parse(text), 'asyncapi');
const exampleErrors = [];
for (const [name, message] of Object.entries(JSON.parse(text).components?.messages ?? {})) {
  const validate = ajv.compile({ $ref: `asyncapi#/components/messages/${name}/payload` });
  for (const [i, example] of (message.examples ?? []).entries()) {
    if (!validate(example.payload)) {
      exampleErrors.push({ message: name, example: i, errors: validate.errors });
    }
  }
}

const report = {
  parsed: document !== undefined,
  version: document?.version(),
  errors: diagnostics.filter((d) => d.severity === 0).length + exampleErrors.length,
  exampleErrors,
  diagnostics: diagnostics.map((d) => ({
    severity: names[d.severity] ?? d.severity,
    code: d.code,
    path: d.path.join('.'),
    message: d.message,
  })),
  operations: document ? document.operations().all().map((o) => o.id()) : [],
  messages: document ? document.components().messages().all().map((m) => m.id()) : [],
};
console.log(JSON.stringify(report, null, 2));
process.exit(report.parsed && report.errors === 0 ? 0 : 1);
