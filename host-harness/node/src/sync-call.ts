// Synchronous calls into a worker thread that does asynchronous I/O: the component's imports
// return before the call into it does, and Node's sockets answer only through its event loop.
//
// The calling thread posts a request and sleeps in Atomics.wait on a shared counter; the worker
// posts its reply on a MessagePort, then bumps the counter and wakes it; the caller reads the
// reply with receiveMessageOnPort, which needs no event loop. Each reply carries its request's
// id, so one that comes after its caller gave up is recognised and dropped. A second shared word
// says the worker has stopped, so a caller never sleeps out its limit waiting on a dead thread.
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';

/** A request the worker understands: an operation name and its arguments. */
export interface Request {
  op: string;
  args: unknown[];
}

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string };

/** A worker thread serving synchronous calls; it never keeps the process alive by itself. */
export class SyncWorker {
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #signal: Int32Array;
  #next = 0;

  constructor(setup: Record<string, unknown>) {
    const { port1, port2 } = new MessageChannel();
    this.#signal = new Int32Array(new SharedArrayBuffer(8));
    this.#worker = new Worker(new URL('./io-worker.js', import.meta.url), {
      workerData: { ...setup, replies: port2, signal: this.#signal },
      transferList: [port2],
    });
    // A thread that failed to load or ran out of memory never ran its own exit handler: later
    // calls see this flag instead of sleeping out their limit.
    this.#worker.on('exit', () => Atomics.store(this.#signal, 1, 1));
    this.#worker.unref();
    this.#port = port1;
    this.#port.unref();
  }

  /**
   * Runs `op` in the worker and returns its value, waiting at most `limitMs`. Throws a plain
   * Error with the worker's message when the operation failed, or when no answer came in time.
   */
  call(op: string, args: unknown[], limitMs: number): unknown {
    if (this.stopped) throw new Error('the host\'s I/O thread has stopped');
    const id = ++this.#next;
    this.#worker.postMessage({ id, op, args });
    const deadline = performance.now() + limitMs;
    for (;;) {
      // Read the counter and the flag before draining the port: a reply posted after the drain
      // bumps the counter, so the wait below returns at once instead of missing the wake-up, and
      // a thread that answered and then stopped has its answer read before the flag counts.
      const seen = Atomics.load(this.#signal, 0);
      const stopped = this.stopped;
      for (let received = receiveMessageOnPort(this.#port); received; received = receiveMessageOnPort(this.#port)) {
        const reply = received.message as Reply;
        if (reply.id !== id) continue;
        if (reply.ok) return reply.value;
        throw new Error(reply.message);
      }
      if (stopped) throw new Error('the host\'s I/O thread stopped before it answered');
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`the host's I/O thread gave no answer in ${Math.round(limitMs / 1000)} s`);
      Atomics.wait(this.#signal, 0, seen, left);
    }
  }

  /** Whether the thread has ended (closed, or failed): calls fail at once. */
  get stopped(): boolean {
    return Atomics.load(this.#signal, 1) === 1;
  }

  /** Stops the thread; calls after this fail. */
  async close(): Promise<void> {
    Atomics.store(this.#signal, 1, 1);
    await this.#worker.terminate();
    this.#port.close();
  }
}
