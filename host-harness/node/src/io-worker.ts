// The I/O thread behind the synchronous imports: runs HTTP exchanges and Redis commands on
// Node's event loop, and answers each request as sync-call.ts expects.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { createSender, type HttpSettings } from './http-transport.js';
import type { RedisSettings } from './redis-ops.js';

interface Setup {
  replies: MessagePort;
  signal: Int32Array;
  http?: HttpSettings;
  redis?: RedisSettings;
}

const { replies, signal, http, redis } = workerData as Setup;

// However the thread ends, a caller waiting on it wakes and fails instead of sleeping out its limit.
process.on('exit', () => {
  Atomics.store(signal, 1, 1);
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
});

function reply(message: object): void {
  replies.postMessage(message);
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
}

type Handler = (...args: never[]) => Promise<unknown>;
let handlers: Record<string, Handler> = {};
// Redis connects before the first request is read; a failure then answers every request.
let broken: string | undefined;
if (http) handlers['http.send'] = createSender(http) as Handler;
if (redis) {
  try {
    const { redisHandlers } = await import('./redis-ops.js');
    handlers = { ...handlers, ...(await redisHandlers(redis)) };
  } catch (error) {
    broken = error instanceof Error ? error.message : String(error);
  }
}

parentPort!.on('message', ({ id, op, args }: { id: number; op: string; args: never[] }) => {
  const handler = handlers[op];
  if (broken !== undefined || !handler) {
    reply({ id, ok: false, message: broken ?? `the I/O thread has no operation ${op}` });
    return;
  }
  handler(...args).then(
    (value) => reply({ id, ok: true, value }),
    (error: unknown) => reply({ id, ok: false, message: error instanceof Error ? error.message : String(error) }),
  );
});
