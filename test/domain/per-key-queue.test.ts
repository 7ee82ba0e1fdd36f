/**
 * Unit tests for the per-key queue in src/domain/per-key-queue.ts.
 * Every task is a manually controlled promise; the tests never wait for time.
 * `drainPromiseJobs()` waits one setImmediate turn: not a delay, it only lets every
 * promise reaction already queued run, so "has not started yet" is a real claim.
 */
import t, { type Test } from 'tap'
import { createPerKeyQueue } from '../../src/domain/per-key-queue.js'

interface Deferred<T> {
  promise: Promise<T>
  resolve: (value: T) => void
  reject: (reason: unknown) => void
}

function deferred<T> (): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (reason: unknown) => void
  const promise = new Promise<T>((_resolve, _reject) => {
    resolve = _resolve
    reject = _reject
  })
  return { promise, resolve, reject }
}

/** A fresh queue and a fresh recorder. */
function setup () {
  return { enqueue: createPerKeyQueue(), ...recorder() }
}

function drainPromiseJobs (): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** Records starts and ends in one log and counts how many tasks run at once. */
function recorder () {
  const log: string[] = []
  const counter = { running: 0, max: 0 }

  function task<T> (name: string) {
    const gate = deferred<T>()
    const started = deferred<void>()
    let hasStarted = false
    const run = async (): Promise<T> => {
      hasStarted = true
      log.push(`start ${name}`)
      counter.running++
      counter.max = Math.max(counter.max, counter.running)
      started.resolve()
      try {
        return await gate.promise
      } finally {
        counter.running--
        log.push(`end ${name}`)
      }
    }
    return {
      run,
      started: started.promise,
      get hasStarted () { return hasStarted },
      resolve: gate.resolve,
      reject: gate.reject
    }
  }

  /** String tasks, one per name. */
  const tasks = <Names extends string[]>(...names: Names) => names.map((name) => task<string>(name)) as { [K in keyof Names]: ReturnType<typeof task<string>> }
  return { log, counter, task, tasks }
}

/** Tracks whether a promise has settled, without waiting for it. */
function track<T> (promise: Promise<T>): { readonly settled: boolean } {
  const state = { settled: false }
  promise.then(() => { state.settled = true }, () => { state.settled = true })
  return state
}

t.test('tasks with the same key run one after another, in submission order', async (t) => {
  const { enqueue, log, counter, tasks } = setup()
  const [a, b, c] = tasks('a', 'b', 'c')

  const pa = enqueue('k', a.run)
  const pb = enqueue('k', b.run)
  const pc = enqueue('k', c.run)

  await a.started
  await drainPromiseJobs()
  t.strictSame(log, ['start a'], 'b and c wait while a runs')

  a.resolve('A')
  await b.started
  await drainPromiseJobs()
  t.strictSame(log, ['start a', 'end a', 'start b'], 'b starts only after a ended; c still waits')
  t.equal(c.hasStarted, false)

  b.resolve('B')
  await c.started
  c.resolve('C')

  t.strictSame(await Promise.all([pa, pb, pc]), ['A', 'B', 'C'])
  t.strictSame(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c'])
  t.equal(counter.max, 1, 'never two at once')
})

t.test('submission order holds even when later tasks are ready first', async (t) => {
  const { enqueue, log, counter, task } = setup()
  const tasks = ['a', 'b', 'c', 'd'].map((name) => task<string>(name))
  const [first, ...rest] = tasks
  if (first === undefined) throw new Error('no tasks')

  const results = tasks.map((x) => enqueue('k', x.run))
  // Everything but the first is ready to finish the moment it starts
  for (const [index, x] of [...rest].reverse().entries()) x.resolve(`late ${index}`)
  await drainPromiseJobs()
  t.strictSame(log, ['start a'], 'only the first runs; the ready ones still wait their turn')

  first.resolve('first')
  await Promise.all(results)
  t.strictSame(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c', 'start d', 'end d'])
  t.equal(counter.max, 1)
})

t.test('tasks with different keys run in parallel', async (t) => {
  const { enqueue, counter, tasks } = setup()
  const [x, y, z] = tasks('x', 'y', 'z')

  const px = enqueue('key-1', x.run)
  const py = enqueue('key-2', y.run)
  const pz = enqueue('key-3', z.run)
  await drainPromiseJobs()
  t.ok(x.hasStarted && y.hasStarted && z.hasStarted, 'all three started while none has finished')
  t.equal(counter.max, 3, 'three at once')

  const xState = track(px)
  const zState = track(pz)
  y.resolve('Y')
  t.equal(await py, 'Y', 'the second key finishes while the first is still running')
  t.equal(xState.settled, false)
  t.equal(zState.settled, false)

  z.resolve('Z')
  x.resolve('X')
  t.strictSame(await Promise.all([px, pz]), ['X', 'Z'])
})

t.test('a busy key does not hold up another key', async (t) => {
  const { enqueue, log, tasks } = setup()
  const [a1, a2, b1] = tasks('a1', 'a2', 'b1')

  // Two tasks for key a, then one for key b.
  const [pa1, pa2, pb1] = [enqueue('a', a1.run), enqueue('a', a2.run), enqueue('b', b1.run)]
  await b1.started
  b1.resolve('B1')
  t.equal(await pb1, 'B1', 'b finished while a still had work queued')
  t.strictSame(log, ['start a1', 'start b1', 'end b1'])

  a1.resolve('A1')
  await a2.started
  a2.resolve('A2')
  t.strictSame(await Promise.all([pa1, pa2]), ['A1', 'A2'])
})

t.test('a rejected task reaches its caller and does not block the next one of its key', async (t) => {
  const { enqueue, log, counter, tasks } = setup()
  const [a, b, c] = tasks('a', 'b', 'c')
  const failure = new Error('task a failed')

  const pa = enqueue('k', a.run)
  const pb = enqueue('k', b.run)
  const pc = enqueue('k', c.run)
  const aRejection = pa.then(() => 'resolved', (error: unknown) => error)

  a.reject(failure)
  t.equal(await aRejection, failure, 'the caller of a gets a\'s own error')
  await b.started
  b.resolve('B')
  t.equal(await pb, 'B', 'the next task of the key still runs and resolves')

  await c.started
  c.reject(new Error('task c failed'))
  await t.rejects(pc, { message: 'task c failed' })
  t.strictSame(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c'])
  t.equal(counter.max, 1)
})

t.test('a task that throws before returning a promise is reported to its caller only', async (t) => {
  const { enqueue, task } = setup()
  const boom = (): Promise<string> => { throw new Error('sync boom') }

  await t.rejects(enqueue('k', boom), { message: 'sync boom' }, 'first on an idle key')

  const a = task<string>('a')
  const pa = enqueue('k', a.run)
  const pBoom = enqueue('k', boom)
  const after = task<string>('after')
  const pAfter = enqueue('k', after.run)
  a.resolve('A')
  t.equal(await pa, 'A')
  await t.rejects(pBoom, { message: 'sync boom' }, 'queued behind another task')
  await after.started
  after.resolve('after')
  t.equal(await pAfter, 'after', 'the key is not blocked')
})

t.test('each caller gets the result of its own task', async (t) => {
  const { enqueue, task } = setup()
  const jobs = []
  for (const key of ['a', 'b', 'c']) {
    for (let i = 0; i < 3; i++) {
      const control = task<{ key: string, i: number }>(`${key}${i}`)
      jobs.push({ key, i, control, result: enqueue(key, control.run) })
    }
  }
  // Resolve in an order unrelated to submission (last submitted first), letting the queue move between steps
  for (const job of [...jobs].reverse()) {
    job.control.resolve({ key: job.key, i: job.i })
    await drainPromiseJobs()
  }
  for (const job of jobs) {
    t.strictSame(await job.result, { key: job.key, i: job.i }, `caller ${job.key}${job.i}`)
  }
})

t.test('a task submitted while the key is still busy waits, even after the first task of the chain ended', async (t) => {
  const { enqueue, log, counter, tasks } = setup()
  const [a, b, c] = tasks('a', 'b', 'c')

  const pa = enqueue('k', a.run)
  const pb = enqueue('k', b.run)
  a.resolve('A')
  t.equal(await pa, 'A')
  await b.started

  const pc = enqueue('k', c.run)
  await drainPromiseJobs()
  t.equal(c.hasStarted, false, 'c waits for b: finishing a must not forget the key while b runs')

  b.resolve('B')
  await c.started
  c.resolve('C')
  t.strictSame(await Promise.all([pb, pc]), ['B', 'C'])
  t.strictSame(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c'])
  t.equal(counter.max, 1)
})

t.test('an idle key is forgotten: after everything settled, a new task for an old key starts at once', async (t) => {
  // Starting synchronously is the observable sign that no stale entry is left for
  // the key: a task queued behind anything (even a settled promise) starts later.
  const { enqueue, task } = setup()

  /** A new task for `key` starts before enqueue returns. */
  async function expectImmediateStart (t: Test, key: string): Promise<void> {
    const again = task<string>('again')
    const pAgain = enqueue(key, again.run)
    t.equal(again.hasStarted, true, 'started before enqueue returned')
    again.resolve('again')
    t.equal(await pAgain, 'again')
  }

  t.test('after one task', async (t) => {
    const a = task<string>('a')
    const pa = enqueue('one', a.run)
    a.resolve('A')
    await pa
    await expectImmediateStart(t, 'one')
  })

  t.test('after a chain of tasks', async (t) => {
    const chain = ['a', 'b', 'c'].map((name) => task<string>(name))
    const results = chain.map((x) => enqueue('chain', x.run))
    for (const x of chain) {
      await x.started
      x.resolve('done')
    }
    await Promise.all(results)
    await expectImmediateStart(t, 'chain')
  })

  t.test('after a rejected task', async (t) => {
    const a = task<string>('a')
    const pa = enqueue('rejected', a.run)
    a.reject(new Error('no'))
    await t.rejects(pa)
    await expectImmediateStart(t, 'rejected')
  })

  t.test('across many keys', async (t) => {
    const keys = Array.from({ length: 200 }, (_, i) => `key-${i}`)
    const firstRound = keys.map((key) => {
      const x = task<string>(key)
      const result = enqueue(key, x.run)
      x.resolve(key)
      return result
    })
    t.strictSame(await Promise.all(firstRound), keys)
    const secondRound = keys.map((key) => {
      const x = task<string>(key)
      const result = enqueue(key, x.run)
      const started = x.hasStarted
      x.resolve(key)
      return { key, started, result }
    })
    t.strictSame(secondRound.filter((x) => !x.started).map((x) => x.key), [], 'every old key starts its new task at once')
    t.strictSame(await Promise.all(secondRound.map((x) => x.result)), keys)
  })
})
