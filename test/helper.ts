/**
 * build(t): a Fastify app with the phone-number plugin on this test file's own
 * database (real server, real connection), closed on teardown; plus tokens
 * and fixtures (an organization with users) for the tests to work on.
 */
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import { ObjectId, type Db, type MongoClient } from 'mongodb'
import type { Test } from 'tap'
import orgPhoneNumbers, { type OrgPhoneNumbersOptions } from '../plugins/phone-numbers/index.js'
import { createTestDatabase } from './helper-database.js'
import { createTokenSigner, type TokenSigner } from '../tools/tokens.js'

export { FERRETDB_NON_ATOMIC_UPDATES, TEST_BACKEND } from './helper-database.js'

export const TEST_SECRET = 'test-secret-that-is-at-least-32-characters-long'

export interface Fixture {
  organizationId: string
  otherOrganizationId: string
  userId: string
  otherUserId: string
  /** A user of the other organization. */
  foreignUserId: string
  adminId: string
}

export interface Built {
  app: FastifyInstance
  db: Db
  client: MongoClient
  fixture: Fixture
  /** A valid SUPERADMIN bearer header. */
  authorization: string
  sign: TokenSigner['sign']
  /** Headers for a JSON request as the SUPERADMIN. */
  headers: Record<string, string>
  phoneNumbersOf: (userId: string) => Promise<unknown[]>
  userDocument: (userId: string) => Promise<Record<string, unknown> | null>
}

/** Signs tokens the way an identity provider would, independent of the app under test. */
export async function createSigner (secret: string = TEST_SECRET): Promise<TokenSigner> {
  return await createTokenSigner(secret)
}

export async function seedFixture (db: Db): Promise<Fixture> {
  const fixture: Fixture = {
    organizationId: new ObjectId().toHexString(),
    otherOrganizationId: new ObjectId().toHexString(),
    userId: new ObjectId().toHexString(),
    otherUserId: new ObjectId().toHexString(),
    foreignUserId: new ObjectId().toHexString(),
    adminId: new ObjectId().toHexString()
  }
  const org = new ObjectId(fixture.organizationId)
  const otherOrg = new ObjectId(fixture.otherOrganizationId)
  await db.collection('organizations').insertMany([
    { _id: org, name: 'Acme' },
    { _id: otherOrg, name: 'Globex' }
  ])
  await db.collection('users').insertMany([
    { _id: new ObjectId(fixture.userId), organizationId: org, name: 'Ada', role: 'AGENT' },
    { _id: new ObjectId(fixture.otherUserId), organizationId: org, name: 'Grace', role: 'AGENT' },
    { _id: new ObjectId(fixture.foreignUserId), organizationId: otherOrg, name: 'Linus', role: 'AGENT' },
    { _id: new ObjectId(fixture.adminId), organizationId: org, name: 'Root', role: 'SUPERADMIN' }
  ])
  return fixture
}

export async function build (t: Test, options: Partial<OrgPhoneNumbersOptions> = {}): Promise<Built> {
  const { db, client } = await createTestDatabase(t)
  const fixture = await seedFixture(db)
  const app = Fastify({ logger: false })
  await app.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET }, ...options })
  await app.ready()
  t.teardown(() => app.close())

  const signer = await createSigner()
  t.teardown(() => signer.close())
  const sign: Built['sign'] = signer.sign
  const authorization = `Bearer ${sign({ sub: fixture.adminId, role: 'SUPERADMIN' })}`

  async function userDocument (userId: string): Promise<Record<string, unknown> | null> {
    await eventsSettled(db)
    return await db.collection('users').findOne({ _id: new ObjectId(userId) })
  }
  async function phoneNumbersOf (userId: string): Promise<unknown[]> {
    const user = await userDocument(userId)
    const list = user?.['phoneNumbers']
    return Array.isArray(list) ? list : []
  }

  return {
    app,
    db,
    client,
    fixture,
    authorization,
    sign,
    headers: { authorization, 'content-type': 'application/json' },
    phoneNumbersOf,
    userDocument
  }
}

export const OPERATION_METHODS = ['POST', 'DELETE', 'GET'] as const

/** The same request to each operation of the path: POST and DELETE with `body`, GET without one. */
export async function injectEveryOperation (app: FastifyInstance, url: string, headers: Record<string, string>, body: Record<string, unknown>): Promise<Array<[typeof OPERATION_METHODS[number], LightMyRequestResponse]>> {
  const answers: Array<[typeof OPERATION_METHODS[number], LightMyRequestResponse]> = []
  for (const method of OPERATION_METHODS) {
    answers.push([method, await app.inject({ method, url, headers, ...(method === 'GET' ? {} : { payload: body }) })])
  }
  return answers
}

export function phoneNumbersUrl (organizationId: string): string {
  return `/api/organizations/${organizationId}/phone-numbers`
}

/**
 * Waits until no user document holds change events any more. The plugin moves
 * them from a user's outbox field to the log right after each write, in the
 * background, so a "nothing was written" comparison of two snapshots must
 * start from a settled database to see only what happened in between.
 */
export async function eventsSettled (db: Db, usersCollection = 'users', outboxField = 'phoneNumbersOutbox'): Promise<void> {
  for (let waited = 0; await db.collection(usersCollection).countDocuments({ [`${outboxField}._id`]: { $exists: true } }) > 0; waited += 20) {
    if (waited > 20_000) throw new Error('change events stayed in the user documents for 20 s')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** The users and organizations as stored, once the change events have settled: for "nothing was written". */
export async function settledSnapshot (db: Db): Promise<{ users: unknown[], organizations: unknown[] }> {
  await eventsSettled(db)
  return {
    users: await db.collection('users').find({}).sort({ _id: 1 }).toArray(),
    organizations: await db.collection('organizations').find({}).sort({ _id: 1 }).toArray()
  }
}
