/** The data side of a run: seeding an organization, direct database access, and the end-of-run consistency check. */
import { MongoClient, ObjectId, type Db } from 'mongodb'
import { PROVIDERS, type Provider } from '../../src/domain/assignments.js'
import { mintToken } from '../../tools/tokens.js'
import { JWT_SECRET } from './server-process.js'

export interface Seeded {
  organizationId: string
  userIds: string[]
  adminId: string
  token: string
}

export async function seed (uri: string, userCount: number): Promise<Seeded> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000 })
  try {
    const db = client.db()
    const organizationId = new ObjectId()
    const adminId = new ObjectId()
    await db.collection('organizations').insertOne({ _id: organizationId, name: 'Reliability' })
    const users = Array.from({ length: userCount }, (_, i) => ({ _id: new ObjectId(), organizationId, name: `user ${i}`, role: 'AGENT' }))
    await db.collection('users').insertMany([...users, { _id: adminId, organizationId, name: 'root', role: 'SUPERADMIN' }])
    const token = await mintToken(JWT_SECRET, { sub: adminId.toHexString(), role: 'SUPERADMIN' }, '2h')
    return { organizationId: organizationId.toHexString(), userIds: users.map((user) => user._id.toHexString()), adminId: adminId.toHexString(), token }
  } finally {
    await client.close()
  }
}

export async function withDb<T> (uri: string, use: (db: Db) => Promise<T>): Promise<T> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000 })
  try {
    return await use(client.db())
  } finally {
    await client.close()
  }
}

export interface Consistency {
  users: number
  assignments: number
  /** Rule 1: numbers held by users of two or more organizations. */
  numbersInTwoOrganizations: number
  /** Rule 2: numbers with two or more entries routing inbound calls. */
  numbersWithTwoInboundRoutes: number
  problems: string[]
}

/**
 * Every user document: valid entries, no duplicate (provider, phoneNumber)
 * anywhere, at most one default per provider; and the ownership rules: each
 * number in one organization, at most one inbound entry per number.
 */
export async function consistencyCheck (uri: string): Promise<Consistency> {
  return await withDb(uri, async (db) => {
    const problems: string[] = []
    const holders = new Map<string, string>()
    const organizationsByNumber = new Map<string, Set<string>>()
    const inboundByNumber = new Map<string, string[]>()
    let assignments = 0
    const documents = await db.collection('users').find({}).toArray()
    for (const user of documents) {
      const id = String(user._id)
      const list: unknown = user['phoneNumbers']
      if (list === undefined) continue
      if (!Array.isArray(list)) { problems.push(`${id}: phoneNumbers is not an array`); continue }
      const defaults = new Map<string, number>()
      for (const entry of list as unknown[]) {
        assignments++
        const e = entry as Record<string, unknown>
        const shapeOk = typeof entry === 'object' && entry !== null &&
          PROVIDERS.includes(e['provider'] as Provider) &&
          typeof e['phoneNumber'] === 'string' && /^\+[1-9]\d{1,14}$/.test(e['phoneNumber']) &&
          typeof e['isDefault'] === 'boolean' && typeof e['isInboundEnabled'] === 'boolean' &&
          (e['label'] === undefined || (typeof e['label'] === 'string' && e['label'].length <= 64)) &&
          e['createdAt'] instanceof Date && e['updatedAt'] instanceof Date
        if (!shapeOk) { problems.push(`${id}: bad entry ${JSON.stringify(entry)}`); continue }
        const key = `${String(e['provider'])}|${String(e['phoneNumber'])}`
        const holder = holders.get(key)
        if (holder !== undefined) problems.push(`${key} held twice (${holder}, ${id})`)
        holders.set(key, id)
        const phoneNumber = String(e['phoneNumber'])
        organizationsByNumber.set(phoneNumber, (organizationsByNumber.get(phoneNumber) ?? new Set()).add(String(user['organizationId'])))
        if (e['isInboundEnabled'] === true) inboundByNumber.set(phoneNumber, [...(inboundByNumber.get(phoneNumber) ?? []), `${id} (${String(e['provider'])})`])
        if (e['isDefault'] === true) defaults.set(String(e['provider']), (defaults.get(String(e['provider'])) ?? 0) + 1)
      }
      for (const [provider, count] of defaults) if (count > 1) problems.push(`${id}: ${count} defaults for ${provider}`)
      if (typeof user['phoneNumbersRevision'] !== 'number') problems.push(`${id}: phoneNumbersRevision is ${String(user['phoneNumbersRevision'])}`)
    }
    let numbersInTwoOrganizations = 0
    let numbersWithTwoInboundRoutes = 0
    for (const [phoneNumber, organizations] of organizationsByNumber) {
      if (organizations.size < 2) continue
      numbersInTwoOrganizations++
      problems.push(`${phoneNumber} is held in ${organizations.size} organizations (${[...organizations].join(', ')})`)
    }
    for (const [phoneNumber, routes] of inboundByNumber) {
      if (routes.length < 2) continue
      numbersWithTwoInboundRoutes++
      problems.push(`${phoneNumber} has ${routes.length} inbound routes: ${routes.join(', ')}`)
    }
    return { users: documents.length, assignments, numbersInTwoOrganizations, numbersWithTwoInboundRoutes, problems }
  })
}
