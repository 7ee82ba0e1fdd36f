/**
 * Runs tasks that share a key one after another, tasks with different keys
 * freely in parallel. Written here because no maintained package offers a
 * keyed queue this small: one Map entry per key with work in flight, removed
 * as soon as that key goes idle.
 */
export type PerKeyQueue = <T>(key: string, task: () => Promise<T>) => Promise<T>

const ignore = (): void => {}

export function createPerKeyQueue (): PerKeyQueue {
  const tails = new Map<string, Promise<void>>()
  return async function enqueue<T> (key: string, task: () => Promise<T>): Promise<T> {
    const previous = tails.get(key)
    const result = previous === undefined ? task() : previous.then(task)
    const tail = result.then(ignore, ignore)
    tails.set(key, tail)
    try {
      return await result
    } finally {
      if (tails.get(key) === tail) tails.delete(key)
    }
  }
}
