// One server of the serve bench, in a fresh process, from the compiled package (dist/), as users
// run it: `node bench/serve-child.mjs <dtesn|plain|plain-greedy> <none|blocking>`. Prints
// `listening <url>` once it accepts connections; SIGTERM closes it.
import { vectorize } from '../dist/index.js';
import { closeOnSignals, startServer } from '../dist/server/server.js';
import { blockingHandler, plainServer } from './obvious.mjs';

const [kind, model] = process.argv.slice(2);
const handler = model === 'blocking' ? blockingHandler : undefined;
if (kind === 'dtesn') {
  const srv = await startServer({ port: 0, host: '127.0.0.1', pipeline: handler ? { handler } : {} });
  closeOnSignals(srv);
  process.stdout.write(`listening ${srv.url}\n`);
} else if (kind === 'plain' || kind === 'plain-greedy') {
  const server = plainServer(vectorize, handler, kind === 'plain-greedy');
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
  process.stdout.write(`listening http://127.0.0.1:${server.address().port}\n`);
} else {
  throw new Error(`unknown server kind ${kind}`);
}
