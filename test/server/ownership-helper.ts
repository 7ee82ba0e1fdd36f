/**
 * Shared by test/server/ownership-*.test.ts: the standalone server
 * (server/server.ts) as a child process on this test file's own
 * database, tokens signed with the secret it was given, plain HTTP (fetch),
 * and a driver connection to read and seed the documents it works on.
 */
import { once } from 'node:events'
import { BSON, ObjectId, type Db, type Document } from 'mongodb'
import type { Test } from 'tap'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'
import { startStandalone, type ServerEnv, type StandaloneServer } from './helper-server.js'
import { createSigner, eventsSettled } from '../helper.js'

export const SECRET = 'ownership-http-secret-5c1e9a7f3b2d8046-QmZxWvUt'

export const RULE_1 = 'Phone number belongs to another organization'
export const RULE_2 = 'Inbound route held by another assignment'
export const MALFORMED = 'Malformed user document'

export interface Answer {
  status: number
  body: Record<string, unknown>
}

export interface Fixture {
  orgA: string
  orgB: string
  /** Users of organization A. */
  a1: string
  a2: string
  a3: string
  /** A user of organization B. */
  b1: string
}

export interface Harness {
  server: StandaloneServer
  db: Db
  /** The connection string of this file's database (for a second server on it). */
  uri: string
  /** Bearer token of a SUPERADMIN. */
  admin: string
  sign: (claims: Record<string, unknown>) => string
  /** A fresh number, unique within this file. */
  number: () => string
  /** Two fresh organizations, three users in A and one in B; `phoneNumbers` seeds user fields per key. */
  fixture: (seed?: Partial<Record<'a1' | 'a2' | 'a3' | 'b1', Document>>) => Promise<Fixture>
  call: (method: string, path: string, body?: unknown, token?: string | null) => Promise<Answer>
  assign: (organizationId: string, body: Record<string, unknown>) => Promise<Answer>
  remove: (organizationId: string, body: Record<string, unknown>) => Promise<Answer>
  transfer: (organizationId: string, body: Record<string, unknown>) => Promise<Answer>
  lookup: (encodedNumber: string, query?: string, token?: string | null) => Promise<Answer>
  list: (organizationId: string, query?: string) => Promise<Answer>
  /** The stored user document, as canonical extended JSON (ObjectIds, Dates and number types kept exact). */
  userJson: (userId: string) => Promise<unknown>
  /** The stored phoneNumbers field, as read by the driver. */
  numbersOf: (userId: string) => Promise<unknown>
  /** Every stored entry (any user) of that number, as { userId, entry }. */
  entriesOf: (phoneNumber: string) => Promise<Array<{ userId: string, organizationId: string, entry: Record<string, unknown> }>>
  claim: (phoneNumber: string) => Promise<Document | null>
  /** All users, as canonical extended JSON: for "nothing was written". */
  allUsers: () => Promise<unknown>
  /** Every claim's organization, inbound route and pending transfer (what a refusal must not change; rev and touchedAt may move). */
  claimRoutes: () => Promise<unknown>
}

/** Canonical extended JSON: equal only when types and values are equal. */
export function canonical (value: unknown): unknown {
  return BSON.EJSON.serialize(value, { relaxed: false })
}

export async function stopServer (server: StandaloneServer): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return
  const gone = once(server.child, 'close')
  server.child.kill('SIGTERM')
  await gone
}

let counter = 0

export async function startHarness (t: Test, env: ServerEnv = {}): Promise<Harness> {
  const { db, dbName } = await createTestDatabase(t)
  const uri = uriForDatabase(dbName)
  const server = await startStandalone({
    MONGODB_URI: uri,
    JWT_SECRET: SECRET,
    LOG_LEVEL: 'warn',
    REQUEST_LOGGING: 'false',
    ...env
  })
  t.teardown(async () => await stopServer(server))
  const signer = await createSigner(SECRET)
  t.teardown(() => signer.close())
  const sign = (claims: Record<string, unknown>): string => signer.sign(claims)
  const admin = sign({ sub: new ObjectId().toHexString(), role: 'SUPERADMIN' })
  const users = db.collection('users')
  const claims = db.collection<{ _id: string } & Document>('phoneNumberClaims')

  async function call (method: string, path: string, body?: unknown, token: string | null = admin): Promise<Answer> {
    const headers: Record<string, string> = {}
    if (token !== null) headers['authorization'] = `Bearer ${token}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    const response = await fetch(`${server.base}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    const text = await response.text()
    let parsed: Record<string, unknown>
    try {
      parsed = JSON.parse(text) as Record<string, unknown>
    } catch {
      parsed = { unparsed: text }
    }
    return { status: response.status, body: parsed }
  }

  async function fixture (seed: Partial<Record<'a1' | 'a2' | 'a3' | 'b1', Document>> = {}): Promise<Fixture> {
    const orgA = new ObjectId()
    const orgB = new ObjectId()
    const ids = { a1: new ObjectId(), a2: new ObjectId(), a3: new ObjectId(), b1: new ObjectId() }
    await db.collection('organizations').insertMany([{ _id: orgA, name: 'Org A' }, { _id: orgB, name: 'Org B' }])
    await users.insertMany((['a1', 'a2', 'a3', 'b1'] as const).map((key) => ({
      _id: ids[key],
      organizationId: key === 'b1' ? orgB : orgA,
      name: key,
      role: 'AGENT',
      ...seed[key]
    })))
    return {
      orgA: orgA.toHexString(),
      orgB: orgB.toHexString(),
      a1: ids.a1.toHexString(),
      a2: ids.a2.toHexString(),
      a3: ids.a3.toHexString(),
      b1: ids.b1.toHexString()
    }
  }

  return {
    server,
    db,
    uri,
    admin,
    sign,
    number: () => `+1416555${String(1000 + (++counter)).padStart(4, '0')}`,
    fixture,
    call,
    assign: async (organizationId, body) => await call('POST', `/api/organizations/${organizationId}/phone-numbers`, body),
    remove: async (organizationId, body) => await call('DELETE', `/api/organizations/${organizationId}/phone-numbers`, body),
    transfer: async (organizationId, body) => await call('POST', `/api/organizations/${organizationId}/phone-numbers/transfer`, body),
    lookup: async (encodedNumber, query = '', token = admin) => await call('GET', `/api/phone-numbers/${encodedNumber}/inbound-route${query}`, undefined, token),
    list: async (organizationId, query = '') => await call('GET', `/api/organizations/${organizationId}/phone-numbers${query}`),
    userJson: async (userId) => {
      await eventsSettled(db)
      return canonical(await users.findOne({ _id: new ObjectId(userId) }))
    },
    numbersOf: async (userId) => (await users.findOne({ _id: new ObjectId(userId) }))?.['phoneNumbers'],
    entriesOf: async (phoneNumber) => {
      const found = await users.find({ 'phoneNumbers.phoneNumber': phoneNumber }).sort({ _id: 1 }).toArray()
      return found.flatMap((user) => (Array.isArray(user['phoneNumbers']) ? user['phoneNumbers'] as unknown[] : [])
        .filter((entry): entry is Record<string, unknown> => typeof entry === 'object' && entry !== null && (entry as Record<string, unknown>)['phoneNumber'] === phoneNumber)
        .map((entry) => ({ userId: String(user['_id']), organizationId: String(user['organizationId']), entry })))
    },
    claim: async (phoneNumber) => await claims.findOne({ _id: phoneNumber }),
    allUsers: async () => {
      await eventsSettled(db)
      return canonical(await users.find({}).sort({ _id: 1 }).toArray())
    },
    claimRoutes: async () => canonical((await claims.find({}).sort({ _id: 1 }).toArray())
      .map((claim) => ({ _id: claim._id, organizationId: claim['organizationId'], inbound: claim['inbound'] ?? null, transfer: claim['transfer'] ?? null })))
  }
}

/** A full entry as the store writes it, for seeding through the driver. */
export function entry (provider: string, phoneNumber: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  const at = new Date('2025-01-02T03:04:05.000Z')
  return { provider, phoneNumber, isDefault: false, isInboundEnabled: true, createdAt: at, updatedAt: at, ...fields }
}
