/**
 * The data and the requests of the benchmark: one organization with N users,
 * each starting with a few numbers, and request bodies that always change
 * something (no upsert collapses into a no-op): half update an existing key
 * (new label, sometimes becoming the default), half add a number no request
 * used before. Consecutive requests go to consecutive users, so the requests
 * in flight at one time touch different users and per-user write queues
 * (and Mongoose version checks) rarely meet.
 */
import { ObjectId, type Db } from 'mongodb'

export const PROVIDERS = ['twilio', 'sinch'] as const
/** Numbers each user holds before every measured run. */
export const SEEDED_NUMBERS_PER_USER = 4

export interface Workload {
  organizationId: string
  adminId: string
  userIds: string[]
}

export interface AssignBody {
  targetUserId: string
  provider: 'twilio' | 'sinch'
  phoneNumber: string
  isDefault: boolean
  isInboundEnabled: boolean
  label: string
}

function seededNumber (userIndex: number, slot: number): string {
  return `+1${String(200 + userIndex).padStart(4, '0')}555${String(slot).padStart(4, '0')}`
}

export function createWorkload (users: number): Workload {
  return {
    organizationId: new ObjectId().toHexString(),
    adminId: new ObjectId().toHexString(),
    userIds: Array.from({ length: users }, () => new ObjectId().toHexString())
  }
}

function seededUsers (workload: Workload): Array<Record<string, unknown>> {
  const organizationId = new ObjectId(workload.organizationId)
  const created = new Date('2024-01-01T00:00:00.000Z')
  return workload.userIds.map((id, userIndex) => ({
    _id: new ObjectId(id),
    organizationId,
    name: `Agent ${userIndex}`,
    role: 'AGENT',
    phoneNumbers: Array.from({ length: SEEDED_NUMBERS_PER_USER }, (_, slot) => ({
      provider: PROVIDERS[slot % PROVIDERS.length],
      phoneNumber: seededNumber(userIndex, slot),
      isDefault: slot < PROVIDERS.length,
      isInboundEnabled: true,
      label: `seed ${slot}`,
      createdAt: created,
      updatedAt: created
    })),
    // Mongoose's version key, so the peer's first save sees a versioned document.
    __v: 0
  }))
}

/** Creates the organization and the admin once. */
export async function seedOrganization (db: Db, workload: Workload): Promise<void> {
  const organizationId = new ObjectId(workload.organizationId)
  await db.collection('organizations').insertOne({ _id: organizationId, name: 'Benchmark organization' })
  await db.collection('users').insertOne({ _id: new ObjectId(workload.adminId), organizationId, name: 'Admin', role: 'SUPERADMIN' })
}

/** Puts every user back to its seeded state, so each measured run starts from the same data. */
export async function resetUsers (db: Db, workload: Workload): Promise<void> {
  const users = db.collection('users')
  await users.deleteMany({ _id: { $in: workload.userIds.map((id) => new ObjectId(id)) } })
  await users.insertMany(seededUsers(workload))
}

/**
 * Body number `n` of a run. Cycle c = floor(n / users) of user u = n % users:
 * even cycles update seeded slot (c/2) % 4 with a new label (default on every
 * other update), odd cycles add a fresh number (distinct for every n).
 */
export function assignBody (workload: Workload, n: number): AssignBody {
  const users = workload.userIds.length
  const userIndex = n % users
  const cycle = Math.floor(n / users)
  const targetUserId = workload.userIds[userIndex]!
  if (cycle % 2 === 0) {
    const slot = (cycle / 2) % SEEDED_NUMBERS_PER_USER
    return {
      targetUserId,
      provider: PROVIDERS[slot % PROVIDERS.length]!,
      phoneNumber: seededNumber(userIndex, slot),
      isDefault: cycle % 4 === 0,
      isInboundEnabled: true,
      label: `update ${n}`
    }
  }
  return {
    targetUserId,
    provider: PROVIDERS[cycle % PROVIDERS.length]!,
    phoneNumber: `+19${String(n).padStart(10, '0')}`,
    isDefault: cycle % 3 === 1,
    isInboundEnabled: cycle % 5 !== 0,
    label: `new ${n}`
  }
}

export function phoneNumbersPath (organizationId: string, prefix = ''): string {
  return `${prefix}/api/organizations/${organizationId}/phone-numbers`
}
