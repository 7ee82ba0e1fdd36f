/**
 * Every index the store and its records rely on, created here and nowhere
 * else. Each serves queries named beside it; test/query-plans checks every
 * filter and sort the code sends against the indexes this file creates.
 */
import type { Collection, Document } from 'mongodb'

/** The users: org-scoped listing, the write filters, who holds a number, and pending outboxes. */
export async function ensureUserIndexes<T extends Document> (users: Collection<T>, field: string): Promise<void> {
  const outboxField = `${field}Outbox`
  await Promise.all([
    // Finds the users whose outbox still holds events (startup and periodic sweeps).
    users.createIndex({ [`${outboxField}._id`]: 1 }, { name: `${outboxField}__id`, sparse: true }),
    // Org-scoped listing in its order (pages start at a user _id) and the organizationId part of every write filter.
    users.createIndex({ organizationId: 1, _id: 1 }, { name: 'organizationId_1__id_1' }),
    // Inbound routing and the ownership rules: who holds a number (of a provider).
    users.createIndex({ [`${field}.phoneNumber`]: 1, [`${field}.provider`]: 1 }, { name: `${field}_phoneNumber_provider` })
  ])
}

/** The change log: an organization's page (whole or for one number), and retention by age. */
export async function ensureEventLogIndexes<T extends Document> (events: Collection<T>): Promise<void> {
  await Promise.all([
    events.createIndex({ organizationId: 1, position: 1, _id: 1 }, { name: 'organizationId_1_position_1__id_1' }),
    events.createIndex({ organizationId: 1, phoneNumber: 1, position: 1 }, { name: 'organizationId_1_phoneNumber_1_position_1' }),
    // Retention deletes by age (a plain index: TTL indexes are missing from some MongoDB-wire backends).
    events.createIndex({ recordedAt: 1 }, { name: 'recordedAt_1' })
  ])
}

/** The log across organizations, in its order: what a route cache follows. */
export async function ensureChangeFeedIndexes<T extends Document> (events: Collection<T>): Promise<void> {
  await events.createIndex({ position: 1, _id: 1 }, { name: 'position_1__id_1' })
}

/** Pending deliveries in log order, and delivered ones by age (kept a while against late copies). */
export async function ensureDeliveryIndexes<T extends Document> (deliveries: Collection<T>): Promise<void> {
  await Promise.all([
    deliveries.createIndex({ pending: 1, position: 1, _id: 1 }, { name: 'pending_1_position_1__id_1' }),
    deliveries.createIndex({ deliveredAt: 1 }, { name: 'deliveredAt_1' })
  ])
}

export type ExpiryIndex = { ttl: true } | { ttl: false, ttlRefused: string }

/** The Idempotency-Key records by expiry: a TTL index where the backend has them, else a plain one for the sweeps. */
export async function ensureIdempotencyIndexes<T extends Document> (records: Collection<T>): Promise<ExpiryIndex> {
  try {
    await records.createIndex({ expiresAt: 1 }, { name: 'expiresAt_1', expireAfterSeconds: 0 })
    return { ttl: true }
  } catch (error) {
    // The backend has no TTL indexes (or refuses this one): sweeps and the read-time check do the expiry.
    await records.createIndex({ expiresAt: 1 }, { name: 'expiresAt_1' })
    return { ttl: false, ttlRefused: error instanceof Error ? error.message : String(error) }
  }
}
