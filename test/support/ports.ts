import { createServer } from 'node:net';

function tryListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A loopback port free right now, for configs that must name one before the process starts.
 * Picked below Linux's ephemeral range (32768–60999): a port the OS handed out for listen(0)
 * can be taken as the source port of any outgoing connection before the daemon binds it.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (await tryListen(port)) return port;
  }
  throw new Error('no free port found in 20000–31999');
}
