/**
 * Idempotency records: one document per (scope, key), whose `_id` is a hash
 * of both. A unique `_id` is the only uniqueness every backend enforces, so
 * it alone decides which of two racing requests runs, across processes too:
 * the first `insertOne` wins, the other gets E11000 and reads the winner's
 * record. Knows nothing of HTTP: an answer is a status and a text.
 *
 * Expiry never depends on a TTL monitor: a record past `expiresAt` is taken
 * for absent when read, and `sweepExpired` deletes them on backends that have
 * no TTL index (the index is created where the backend accepts it).
 */
import { createHash, randomUUID } from 'node:crypto'
import type { Collection, Db } from 'mongodb'
import { ensureIdempotencyIndexes, type ExpiryIndex } from './store-indexes.js'

/** The answer kept for replays. */
export interface KeptAnswer {
  status: number
  contentType: string
  body: string
}

export interface IdempotencyRecord {
  _id: string
  /** Hash of the canonical request body: a repeat with another body is refused. */
  bodyHash: string
  /** Random per attempt: completion and takeover are compare-and-swap on it. */
  owner: string
  startedAt: Date
  expiresAt: Date
  /** Null while the first request runs. */
  answer: KeptAnswer | null
}

export type BeginResult =
  /** No record (or only an expired or abandoned one): the caller runs the request, then completes or abandons it. */
  | { status: 'started', owner: string }
  | { status: 'replay', answer: KeptAnswer }
  | { status: 'in-flight' }
  | { status: 'other-body' }

export interface IdempotencyRecordsOptions {
  collection: string
  /** How long a record is kept, in ms. */
  ttlMs: number
  /** How long a running request keeps its key; past it (its process died, say) another request may take the key over, in ms. */
  leaseMs: number
}

export interface IdempotencyRecords {
  begin (id: string, bodyHash: string, now?: Date): Promise<BeginResult>
  /** Keeps the answer; false when the key was taken over meanwhile (the newer attempt's answer counts). */
  complete (id: string, owner: string, answer: KeptAnswer): Promise<boolean>
  /** Drops the attempt's record, so that a retry runs again. */
  abandon (id: string, owner: string): Promise<void>
  /** Deletes the expired records; returns how many. */
  sweepExpired (now?: Date): Promise<number>
  /** Creates the expiry index: a TTL index where the backend accepts one, else a plain one (`ttlRefused` says why). */
  ensureIndexes (): Promise<ExpiryIndex>
}

/** `_id` of the record of `key` in `scope` (caller, organization, method, path). */
export function idempotencyRecordId (scope: ReadonlyArray<string | null>, key: string): string {
  return createHash('sha256').update(JSON.stringify([...scope, key])).digest('base64url')
}

/** JSON with object keys sorted at every level: equal bodies give equal text whatever their key order. */
function canonicalJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).filter(([, item]) => item !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([name, item]) => `${JSON.stringify(name)}:${canonicalJson(item)}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

export function canonicalBodyHash (body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('base64url')
}

function isDuplicateKey (error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 11000
}

/** A duplicate insert, a read that finds nothing and a lost takeover each send `begin` round again; bounded. */
const MAX_BEGIN_ROUNDS = 5

export function createIdempotencyRecords (db: Db, options: IdempotencyRecordsOptions): IdempotencyRecords {
  const records: Collection<IdempotencyRecord> = db.collection<IdempotencyRecord>(options.collection)

  function freshRecord (id: string, bodyHash: string, now: Date): IdempotencyRecord {
    return { _id: id, bodyHash, owner: randomUUID(), startedAt: now, expiresAt: new Date(now.getTime() + options.ttlMs), answer: null }
  }

  async function begin (id: string, bodyHash: string, now = new Date()): Promise<BeginResult> {
    // One owner for every round: a record found with it is this call's own, whichever round wrote it.
    const record = freshRecord(id, bodyHash, now)
    for (let round = 0; round < MAX_BEGIN_ROUNDS; round++) {
      try {
        await records.insertOne(record)
        return { status: 'started', owner: record.owner }
      } catch (error) {
        if (!isDuplicateKey(error)) throw error
      }
      const held = await records.findOne({ _id: id })
      if (held === null) continue // deleted (abandoned, swept) since the insert: insert again
      // This call's own record, from an earlier round. On FerretDB 1.24, two racing requests on one key
      // once both answered 409, the record holding neither's current owner: a round can repeat after
      // its own insert landed, so the owner is kept for the whole call and recognised here.
      if (held.owner === record.owner) return { status: 'started', owner: record.owner }
      const expired = held.expiresAt.getTime() <= now.getTime()
      const leaseOver = held.answer === null && held.startedAt.getTime() + options.leaseMs <= now.getTime()
      if (!expired) {
        if (held.bodyHash !== bodyHash) return { status: 'other-body' }
        if (held.answer !== null) return { status: 'replay', answer: held.answer }
        if (!leaseOver) return { status: 'in-flight' }
      }
      // Expired, or its request's process died: take it over, unless another request just did.
      const taken = await records.replaceOne({ _id: id, owner: held.owner }, record)
      if (taken.matchedCount === 1) return { status: 'started', owner: record.owner }
    }
    // Only under a storm of takeovers of one key: the caller answers "still running".
    return { status: 'in-flight' }
  }

  async function complete (id: string, owner: string, answer: KeptAnswer): Promise<boolean> {
    const result = await records.updateOne({ _id: id, owner }, { $set: { answer } })
    return result.matchedCount === 1
  }

  async function abandon (id: string, owner: string): Promise<void> {
    await records.deleteOne({ _id: id, owner })
  }

  async function sweepExpired (now = new Date()): Promise<number> {
    return (await records.deleteMany({ expiresAt: { $lte: now } })).deletedCount
  }

  async function ensureIndexes (): Promise<ExpiryIndex> {
    return await ensureIdempotencyIndexes(records)
  }

  return { begin, complete, abandon, sweepExpired, ensureIndexes }
}
