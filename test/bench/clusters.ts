// Clustering at the budget's size: 1M profiles × 8 features, in memory (packages/core): standardise,
// choose k by sampled silhouette over a range, fit on a sample, assign every profile, match ids to a
// previous run. Quality of the sampled fit is measured against Lloyd's iterations on every point
// (ml-kmeans over all 1M rows): the ratio of their inertia over all points, and their agreement (ARI).
//   npm run bench:clusters                      (BENCH_PROFILES=..., BENCH_FEATURES=..., --no-full skips the reference fit)
//   npm run bench:clusters -- --e2e             (also end to end: Postgres at DATABASE_URL, through the API; clusters/e2e.ts)
import os from 'node:os';
import {
  adjustedRandIndex,
  clusterPoints,
  fitKMeans,
  fitScaler,
  type Points,
  seededRandom,
  silhouette,
  standardise,
} from '@cairn/core';
import { endToEnd } from './clusters/e2e.ts';

const N = Number(process.env.BENCH_PROFILES ?? 1_000_000);
const D = Number(process.env.BENCH_FEATURES ?? 8);
const K = 5;
const full = !process.argv.includes('--no-full');

// The same groups (centres from seed 1) every time; `seed` draws the profiles in them.
function generate(seed: number): { points: Points; truth: Int32Array } {
  const centresRandom = seededRandom(1);
  const random = seededRandom(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  // Features on different scales (money, counts, shares), blobs overlapping a little.
  const scale = Array.from({ length: D }, (_, j) => [1000, 10, 1, 100][j % 4]!);
  const centres = Array.from({ length: K }, () => Array.from({ length: D }, (_, j) => centresRandom() * 4 * scale[j]!));
  const data = new Float64Array(N * D);
  const truth = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    const b = Math.floor(random() * K);
    truth[i] = b;
    for (let j = 0; j < D; j++) data[i * D + j] = centres[b]![j]! + gauss() * scale[j]! * 0.6;
  }
  return { points: { data, n: N, d: D }, truth };
}

const time = <T>(f: () => T): [T, number] => {
  const t0 = performance.now();
  const r = f();
  return [r, (performance.now() - t0) / 1000];
};

const features = Array.from({ length: D }, (_, j) => `f${j}`);
console.log(`clusters bench: ${N.toLocaleString()} profiles × ${D} features, ${K} true groups`);
console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, node ${process.version}`);
const [{ points, truth }, genS] = time(() => generate(1));
console.log(`generated in ${genS.toFixed(1)} s`);

const [fixed, fixedS] = time(() => clusterPoints(points, features, { k: K, seed: 42 }));
console.log(
  `k given (${K}):              ${fixedS.toFixed(2)} s  ARI vs truth ${adjustedRandIndex(truth, fixed.ids).toFixed(4)}`,
);

const [chosen, chosenS] = time(() => clusterPoints(points, features, { kRange: [2, 8], seed: 42 }));
console.log(
  `k chosen in [2, 8] (k=${chosen.k}): ${chosenS.toFixed(2)} s  ARI vs truth ${adjustedRandIndex(truth, chosen.ids).toFixed(4)}`,
);

// A re-run on the next day's data: the same groups, every profile drawn afresh, a new seed; ids matched to
// the first run's centroids. "Kept" compares the same row index, which now holds another draw from the same group.
const next = generate(2);
const [rerun, rerunS] = time(() => clusterPoints(next.points, features, { k: K, seed: 7, previous: fixed.clusters }));
// Per true group, the id the first run gave most of it must be the id the re-run gives it.
const majority = (ids: Int32Array, truth: Int32Array) =>
  Array.from({ length: K }, (_, g) => {
    const counts = new Map<number, number>();
    for (let i = 0; i < N; i++) if (truth[i] === g) counts.set(ids[i]!, (counts.get(ids[i]!) ?? 0) + 1);
    return [...counts].sort((a, b) => b[1] - a[1])[0]![0];
  });
const before = majority(fixed.ids, truth);
const after = majority(rerun.ids, next.truth);
let kept = 0;
for (let i = 0; i < N; i++) if (rerun.ids[i] === before[next.truth[i]!]) kept++;
const groupsKept = before.filter((id, g) => after[g] === id).length;
console.log(
  `re-run with id matching:     ${rerunS.toFixed(2)} s  groups keeping their id ${groupsKept}/${K}; profiles given their group's id ${((kept / N) * 100).toFixed(2)}%`,
);

if (full) {
  const z = standardise(points, fitScaler(points));
  const [ref, refS] = time(() => fitKMeans(z, K, { seed: 42, fitSample: N }));
  const ratio = fixed.inertia / ref.inertia;
  console.log(
    `reference: Lloyd on all ${N.toLocaleString()} points: ${refS.toFixed(2)} s (${ref.iterations} iterations); ` +
      `sampled/full inertia ${ratio.toFixed(5)}; ARI sampled vs full ${adjustedRandIndex(fixed.ids, ref.labels).toFixed(4)}`,
  );
  // The silhouette choosing k is computed on a sample of 2,000 profiles (it is quadratic): against a
  // sample ten times larger (4·10⁸ distances a k; every 1M point would be 10¹²), per k and the k each picks.
  const big = 20_000;
  const rows = chosen.scores.map(({ k, silhouette: small }) => {
    const fit = fitKMeans(z, k, { seed: 42 });
    return { k, small, large: silhouette(z, fit.labels, { sample: big, seed: 42 }) };
  });
  const best = (f: (r: (typeof rows)[number]) => number) => rows.reduce((a, b) => (f(b) > f(a) ? b : a)).k;
  console.log(
    `silhouette per k, sample of 2,000 (used) vs ${big.toLocaleString()}: ` +
      rows.map((r) => `k=${r.k} ${r.small.toFixed(3)}/${r.large.toFixed(3)}`).join(', ') +
      `; k picked ${best((r) => r.small)} vs ${best((r) => r.large)}`,
  );
}

if (process.argv.includes('--e2e')) {
  const e = await endToEnd({ n: N, d: D, k: K });
  console.log(
    process.env.BENCH_KEEP_DB === '1'
      ? `end to end: kept database, its trait table emptied and rewritten (VACUUM FULL) in ${e.seedS.toFixed(1)} s (seeded once, when missing)`
      : `end to end: seeded ${N.toLocaleString()} profiles × ${D} traits in ${e.seedS.toFixed(1)} s`,
  );
  e.runs.forEach((r, i) => {
    const run = r.run as { status: string; profiles: number; k: number; error: string | null };
    console.log(
      `end to end, run ${i + 1} (${i ? 're-run, same data' : 'first run, fresh dataset'}; load average ${r.load.toFixed(2)}): ` +
        `${run.status} (k=${run.k}, ${run.profiles?.toLocaleString()} profiles${run.error ? `, ${run.error}` : ''}) ` +
        `in ${r.runS.toFixed(2)} s; steps first seen at (s):`,
      Object.fromEntries(Object.entries(r.steps).map(([k, v]) => [k, Number(v.toFixed(2))])),
    );
  });
  const ref = e.references;
  console.log(
    `references, same database after the runs (load average ${os.loadavg()[0]!.toFixed(2)}): ` +
      `the features' join streamed out by COPY ${ref.copyFeaturesOut!.toFixed(2)} s; ` +
      `INSERT … SELECT of ${N.toLocaleString()} (uuid, jsonb) rows into a bare table ${ref.rawInsert!.toFixed(2)} s, ` +
      `into one with computed_trait_values' primary key and index ${ref.keyedInsert!.toFixed(2)} s`,
  );
}
