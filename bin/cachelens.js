#!/usr/bin/env node
// Runs the compiled JavaScript in dist/ (built from src/ by `npm ci` through the `prepare` script,
// or `npm run build`). tsx is for tests and development only.
let main;
try {
  main = await import('../dist/cli/main.js');
} catch (err) {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli/main.js')) {
    process.stderr.write('cachelens: dist/ is not built; run `npm ci` or `npm run build`\n');
    process.exit(2);
  }
  throw err;
}
await main.runCli(process.argv.slice(2));
