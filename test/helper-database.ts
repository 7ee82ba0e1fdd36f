import { randomBytes } from 'node:crypto'
import { basename } from 'node:path'
import { MongoClient, type Db } from 'mongodb'
import type { Test } from 'tap'

/** Backend the test runner started (scripts/run-tests.ts). */
export const TEST_BACKEND = process.env['TEST_MONGO_BACKEND_NAME']

/**
 * FerretDB 1.24's SQLite handler reads the matching documents, then rewrites
 * each whole document by _id without re-checking the filter, so two writers on
 * one document from different connections can undo each other (measured: 30
 * parallel compare-and-swap updates on one revision, several "win"). The store
 * queues its own writes per user, which keeps a single server correct. Tests
 * that race the store against an outside writer still run there, with this
 * reason as the `todo` of their assertions: failures show as TODO, because the
 * defect is the backend's.
 */
export const FERRETDB_NON_ATOMIC_UPDATES = TEST_BACKEND === 'ferretdb'
  ? 'FerretDB 1.24 (SQLite) does not apply an update filter atomically with its write'
  : false

export interface TestDatabase {
  client: MongoClient
  db: Db
  uri: string
  dbName: string
}

/** Only what the helper needs from tap's `t`, so a subtest or the root `t` both fit. */
export type TestLike = Pick<Test, 'teardown'>

/** The server the test runner (scripts/run-tests.ts) started, or the one MONGODB_URI names. */
export function testServerUri (): string {
  const uri = process.env['MONGODB_URI']
  if (uri === undefined || uri.trim() === '') {
    throw new Error('MONGODB_URI is not set: run tests with npm test, which starts a test database (or set MONGODB_URI yourself)')
  }
  return uri
}

/**
 * The same server URI with its database path replaced by `dbName`, query options kept:
 * for code under test that takes a connection string rather than a client.
 */
export function uriForDatabase (dbName: string, uri: string = testServerUri()): string {
  const match = /^(mongodb(?:\+srv)?:\/\/[^/?]*)(?:\/[^?]*)?(\?.*)?$/.exec(uri)
  if (match === null) throw new Error(`MONGODB_URI does not look like a MongoDB connection string: ${uri}`)
  return `${match[1] ?? ''}/${dbName}${match[2] ?? ''}`
}

/** Unique per test process: test files run in parallel against one server and must not share data. */
export function uniqueDatabaseName (file: string = process.argv[1] ?? 'test'): string {
  const base = basename(file).replace(/\.test\.[cm]?[jt]s$|\.[cm]?[jt]s$/, '').replace(/[^A-Za-z0-9_]/g, '_')
  // MongoDB limits database names to 63 bytes.
  return `test_${base.slice(0, 30)}_${process.pid}_${randomBytes(4).toString('hex')}`
}

/** Connects to a fresh database for this test; dropped and disconnected at teardown. */
export async function createTestDatabase (t: TestLike, dbName: string = uniqueDatabaseName()): Promise<TestDatabase> {
  const uri = uriForDatabase(dbName)
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000 })
  await client.connect()
  const db = client.db(dbName)
  t.teardown(async () => {
    try {
      await db.dropDatabase()
    } finally {
      await client.close()
    }
  })
  return { client, db, uri, dbName }
}

/**
 * A fresh test database and the same database over a second connection pool:
 * what another server process (or a restarted one) would use.
 */
export async function createTestDatabasePair (t: TestLike): Promise<TestDatabase & { otherDb: Db }> {
  const database = await createTestDatabase(t)
  const otherClient = new MongoClient(database.uri, { serverSelectionTimeoutMS: 10_000 })
  await otherClient.connect()
  t.teardown(async () => { await otherClient.close() })
  return { ...database, otherDb: otherClient.db(database.dbName) }
}
