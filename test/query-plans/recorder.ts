/**
 * Records the queries a piece of code sends, by the driver's own command
 * monitoring: every command started while `recording.run` is on the stack
 * (an AsyncLocalStorage context, which the driver's promises carry through
 * its connection pool), as a filter-and-sort shape, plus the indexes that
 * code created. Nothing is intercepted: the commands go to the database as
 * they would anyway.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { CommandStartedEvent, Document, MongoClient } from 'mongodb'
import { keysOf, type IndexKeys, type QueryShape } from './index-rules.js'

export interface Recording {
  /** Runs `task` with every command it sends recorded. */
  run: <T>(task: () => Promise<T>) => Promise<T>
  shapes: QueryShape[]
  /** Indexes the recorded code created, by collection. */
  indexes: Map<string, IndexKeys[]>
}

function shapesOf (command: Document, name: string): QueryShape[] {
  const of = (collection: unknown, filter: unknown, sort?: unknown): QueryShape => ({
    collection: String(collection),
    command: name,
    filter: (filter ?? {}) as Record<string, unknown>,
    // The driver sends a sort as a Map, to keep its order.
    ...(sort === undefined ? {} : { sort: (sort instanceof Map ? Object.fromEntries(sort) : sort) as Record<string, 1 | -1> })
  })
  switch (name) {
    case 'find': return [of(command['find'], command['filter'], command['sort'])]
    case 'findAndModify': return [of(command['findAndModify'], command['query'], command['sort'])]
    case 'count': return [of(command['count'], command['query'])]
    case 'distinct': return [of(command['distinct'], command['query'])]
    case 'update': return (command['updates'] as Document[]).map((update) => of(command['update'], update['q']))
    case 'delete': return (command['deletes'] as Document[]).map((deletion) => of(command['delete'], deletion['q']))
    case 'aggregate': {
      const first = (command['pipeline'] as Document[])[0]
      return [of(command['aggregate'], first?.['$match'] ?? {})]
    }
    default: return []
  }
}

export function recordQueries (client: MongoClient): Recording {
  const inside = new AsyncLocalStorage<true>()
  const shapes: QueryShape[] = []
  const indexes = new Map<string, IndexKeys[]>()
  client.on('commandStarted', (event: CommandStartedEvent) => {
    if (inside.getStore() !== true) return
    if (event.commandName === 'createIndexes') {
      const collection = String(event.command['createIndexes'])
      const list = indexes.get(collection) ?? []
      for (const index of event.command['indexes'] as Document[]) list.push(keysOf(index['key'] as Record<string, unknown> | Map<string, unknown>))
      indexes.set(collection, list)
      return
    }
    shapes.push(...shapesOf(event.command, event.commandName))
  })
  return { run: async (task) => await inside.run(true, task), shapes, indexes }
}
