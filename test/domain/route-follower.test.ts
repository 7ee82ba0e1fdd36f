/**
 * The route follower on a real events collection (change-feed.ts): each event
 * once, in order; an event landing late, behind positions already read but
 * within the look-back window, still arrives (once); the follower starts over
 * when its place is deleted, and when there are more new events than one
 * pass reads.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { ObjectId } from 'mongodb'
import t, { type Test } from 'tap'
import type { LoggedEvent } from '../../src/domain/change-events.js'
import { createChangeFeed } from '../../src/domain/change-feed.js'
import { startRouteFollower, type FollowerRestartReason } from '../../src/domain/route-follower.js'
import { createTestDatabase } from '../helper-database.js'

const INTERVAL_MS = 30

function loggedEvent (phoneNumber: string, positionMs: number): LoggedEvent {
  const at = new Date(positionMs)
  return {
    _id: new ObjectId().toHexString(),
    type: 'assigned',
    at,
    organizationId: new ObjectId(),
    userId: new ObjectId(),
    provider: 'twilio',
    phoneNumber,
    before: null,
    after: null,
    actor: null,
    requestId: null,
    position: positionMs * 1000,
    recordedAt: at
  }
}

async function followed (t: Test, pageSize?: number, maxPagesPerPass?: number): Promise<{ insert: (event: LoggedEvent) => Promise<void>, changes: string[], restarts: FollowerRestartReason[], errors: unknown[], deleteAll: () => Promise<void> }> {
  const { db } = await createTestDatabase(t)
  const collection = db.collection<LoggedEvent>('phoneNumberEvents')
  const feed = createChangeFeed(collection)
  await feed.ensureIndexes()
  const changes: string[] = []
  const restarts: FollowerRestartReason[] = []
  const errors: unknown[] = []
  const follower = startRouteFollower({ feed, intervalMs: INTERVAL_MS, lookbackMs: 1000, maxLagMs: 5000, pageSize, maxPagesPerPass, onChange: (n) => changes.push(n), onRestart: (reason) => restarts.push(reason), onError: (error) => errors.push(error) })
  t.teardown(async () => await follower.stop())
  return {
    insert: async (event) => { await collection.insertOne(event) },
    changes,
    restarts,
    errors,
    deleteAll: async () => { await collection.deleteMany({}) }
  }
}

t.test('each event once, in order, and a late one within the window once', async (t) => {
  const f = await followed(t)
  const now = Date.now()
  await f.insert(loggedEvent('+1001', now))
  await f.insert(loggedEvent('+1002', now + 1))
  await sleep(INTERVAL_MS * 5)
  t.same(f.changes, ['+1001', '+1002'], 'both, in order')
  // A slow flush: its event lands now with a position 500 ms behind those already read.
  await f.insert(loggedEvent('+1003', now - 500))
  await sleep(INTERVAL_MS * 5)
  t.same(f.changes, ['+1001', '+1002', '+1003'], 'the late event arrives, and nothing twice')
  t.same(f.restarts, [])
  t.same(f.errors, [], 'no pass failed')
})

t.test('its place deleted (retention, a trim): it starts over', async (t) => {
  const f = await followed(t)
  await f.insert(loggedEvent('+2001', Date.now()))
  await sleep(INTERVAL_MS * 5)
  t.same(f.changes, ['+2001'])
  await f.deleteAll()
  await sleep(INTERVAL_MS * 5)
  t.same(f.restarts, ['lost-place'], 'one restart')
  await f.insert(loggedEvent('+2002', Date.now()))
  await sleep(INTERVAL_MS * 5)
  t.same(f.changes, ['+2001', '+2002'], 'and follows from its new place')
  t.same(f.errors, [], 'no pass failed')
})

t.test('more new events than one pass reads: it starts over', async (t) => {
  const f = await followed(t, 2, 2)
  const now = Date.now()
  for (let i = 0; i < 6; i++) await f.insert(loggedEvent(`+300${i}`, now + i))
  await sleep(INTERVAL_MS * 3)
  t.ok(f.restarts.includes('behind'), `restarted as behind (${f.restarts.join(', ')})`)
  t.same(f.errors, [], 'no pass failed')
})
