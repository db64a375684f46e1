// The floors of src/, lowest first: a folder may import its own floor and the floors below it,
// never one above. The data flow is config → scrape → store → correlate → pipeline → report → cli,
// with the OTLP wire format (otlp) and the telemetry server and logger (telemetry) at the ground.
// `npm run lint:deps` checks it; .ci/run runs it; test/floors.test.ts proves a wrong arrow fails it.
const FLOORS = [
  ['otlp', 'telemetry'],
  ['config'],
  ['scrape'],
  ['store'],
  ['correlate'],
  ['pipeline'],
  ['report'],
  ['cli', 'demo'],
];

const above = (i) => FLOORS.slice(i + 1).flat();
const forbidden = FLOORS.slice(0, -1).flatMap((floor, i) =>
  floor.map((name) => ({
    name: `${name}-imports-up`,
    comment: `src/${name} is on floor ${i}: it may not import ${above(i).join(', ')}`,
    severity: 'error',
    from: { path: `^src/${name}/` },
    to: { path: `^src/(${above(i).join('|')})/` },
  })),
);
// The ground floor's two parts are independent of each other.
forbidden.push(
  { name: 'otlp-imports-telemetry', severity: 'error', from: { path: '^src/otlp/' }, to: { path: '^src/telemetry/' } },
  { name: 'telemetry-imports-otlp', severity: 'error', from: { path: '^src/telemetry/' }, to: { path: '^src/otlp/' } },
  { name: 'no-circular', severity: 'error', from: { path: '^src/' }, to: { circular: true } },
);

module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
