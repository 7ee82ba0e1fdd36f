/**
 * Shared by the ownership-crash-*.test.ts files (a crash between the steps of
 * the store's multi-step writes): fresh worlds (organizations, users, a
 * number), a store whose `onStep` throws a SimulatedCrash right after the
 * chosen step, a restarted store, and readers of the stored state (holdings,
 * claim, route) with the safety check every state must pass.
 */
import type { Test } from 'tap'
import { ObjectId, type Db } from 'mongodb'
import {
  createPhoneNumberStore,
  type AssignResult,
  type PhoneNumberStore,
  type StoreStep
} from '../../src/domain/store.js'
import type { ClaimDocument } from '../../src/domain/number-claims.js'
import { SimulatedCrash } from './simulated-crash.js'

export const PROVIDER = 'twilio' as const

/** Which step the next operation of a store crashes after; disarmed once it fired. */
export interface CrashSwitch { at: StoreStep | undefined }

export interface World {
  db: Db
  /** The same database over another connection: what a restarted process would use. */
  otherDb: Db
  orgA: ObjectId
  orgB: ObjectId
  /** Users of orgA: A1..A4; of orgB: B1. */
  users: Record<'A1' | 'A2' | 'A3' | 'A4' | 'B1', ObjectId>
  names: Map<string, string>
  phoneNumber: string
}

/**
 * seedWorld and crashingStore on this test file's database: `otherDb` is the
 * same database over its own connection pool, as a second server process
 * would use it.
 */
export function crashWorlds (db: Db, otherDb: Db): { seedWorld: () => Promise<World>, crashingStore: (crash: CrashSwitch, instanceId?: string) => PhoneNumberStore } {
  let numberSequence = 0

  /** Two fresh organizations with their users, and a number nobody ever touched. */
  async function seedWorld (): Promise<World> {
    const orgA = new ObjectId()
    const orgB = new ObjectId()
    await db.collection('organizations').insertMany([{ _id: orgA }, { _id: orgB }])
    const users = { A1: new ObjectId(), A2: new ObjectId(), A3: new ObjectId(), A4: new ObjectId(), B1: new ObjectId() }
    await db.collection('users').insertMany(Object.entries(users).map(([name, _id]) => ({
      _id,
      organizationId: name.startsWith('A') ? orgA : orgB,
      name
    })))
    const names = new Map(Object.entries(users).map(([name, id]) => [id.toHexString(), name]))
    names.set(orgA.toHexString(), 'orgA')
    names.set(orgB.toHexString(), 'orgB')
    numberSequence++
    return { db, otherDb, orgA, orgB, users, names, phoneNumber: `+1416555${String(numberSequence).padStart(4, '0')}` }
  }

  function crashingStore (crash: CrashSwitch, instanceId = 'crashed-process'): PhoneNumberStore {
    return createPhoneNumberStore(db, {

      instanceId,
      onStep: (step) => {
        if (step !== crash.at) return
        crash.at = undefined
        throw new SimulatedCrash(step)
      }
    })
  }

  return { seedWorld, crashingStore }
}

/** Another process started after the crash: its own instanceId and connection. */
export function restartedStore (world: World): PhoneNumberStore {
  return createPhoneNumberStore(world.otherDb, { instanceId: 'restarted-process' })
}

/** Awaits an operation that must stop with the simulated crash right after `step`. */
export async function expectCrash (t: Test, operation: Promise<unknown>, step: StoreStep): Promise<void> {
  const outcome = await operation.then((result) => ({ result }), (error: unknown) => ({ error }))
  if ('result' in outcome) {
    t.fail(`the operation was to crash after ${step}, it answered ${JSON.stringify(outcome.result)}`)
    return
  }
  t.ok(outcome.error instanceof SimulatedCrash && outcome.error.step === step, `the operation stopped right after ${step}`, { error: String(outcome.error) })
}

export function nameOf (world: World, id: unknown): string {
  return id instanceof ObjectId ? world.names.get(id.toHexString()) ?? id.toHexString() : String(id)
}

/** Every entry of the number in the users collection, as `A1:inbound` / `A3:outbound`, sorted. */
export async function holdingsOf (world: World): Promise<string[]> {
  const documents = await world.db.collection('users').find({ 'phoneNumbers.phoneNumber': world.phoneNumber }).toArray()
  const holdings: string[] = []
  for (const document of documents) {
    const entries: unknown = document['phoneNumbers']
    if (!Array.isArray(entries)) continue
    for (const entry of entries as Array<Record<string, unknown>>) {
      if (entry['phoneNumber'] !== world.phoneNumber) continue
      holdings.push(`${nameOf(world, document['_id'])}:${entry['isInboundEnabled'] === true ? 'inbound' : 'outbound'}`)
    }
  }
  return holdings.sort()
}

/** The organizations whose users hold the number. */
export async function holdingOrganizations (world: World): Promise<string[]> {
  const documents = await world.db.collection('users').find({ 'phoneNumbers.phoneNumber': world.phoneNumber }).toArray()
  return [...new Set(documents.map((document) => nameOf(world, document['organizationId'])))].sort()
}

export async function entryOf (world: World, user: keyof World['users']): Promise<Record<string, unknown> | undefined> {
  const document = await world.db.collection('users').findOne({ _id: world.users[user] })
  const entries: unknown = document?.['phoneNumbers']
  if (!Array.isArray(entries)) return undefined
  return (entries as Array<Record<string, unknown>>).find((entry) => entry['phoneNumber'] === world.phoneNumber)
}

export async function claimOf (world: World): Promise<ClaimDocument | null> {
  return await world.db.collection<ClaimDocument>('phoneNumberClaims').findOne({ _id: world.phoneNumber })
}

/** The claim as `org / inbound user / transfer state`, readable in a diff. */
export async function claimSummary (world: World): Promise<Record<string, unknown> | null> {
  const claim = await claimOf(world)
  if (claim === null) return null
  return {
    organization: nameOf(world, claim.organizationId),
    inbound: claim.inbound == null ? null : `${nameOf(world, claim.inbound.userId)}:${claim.inbound.provider}`,
    transfer: claim.transfer === undefined
      ? 'none'
      : `${nameOf(world, claim.transfer.fromUserId)}->${nameOf(world, claim.transfer.toUserId)} ${claim.transfer.committed ? 'committed' : 'uncommitted'}`
  }
}

/** findInboundRoute's answer as `routed:A1`, `no-route` or `ambiguous:A1,A2`. */
export async function routeOf (world: World, store: PhoneNumberStore): Promise<string> {
  const route = await store.findInboundRoute(world.phoneNumber)
  if (route.status === 'routed') return `routed:${nameOf(world, route.holder.userId)}`
  if (route.status === 'no-route') return 'no-route'
  return `ambiguous:${route.holders.map((holder) => nameOf(world, holder.userId)).sort().join(',')}`
}

/** What the design forbids at every instant: two organizations, an unresolved double route, a route nobody holds. */
export async function checkSafe (t: Test, world: World, store: PhoneNumberStore, when: string): Promise<void> {
  const organizations = await holdingOrganizations(world)
  t.ok(organizations.length <= 1, `${when}: held by at most one organization`, { organizations })
  const holdings = await holdingsOf(world)
  const route = await routeOf(world, store)
  const inbound = holdings.filter((holding) => holding.endsWith(':inbound')).map((holding) => holding.split(':')[0])
  if (inbound.length === 0) {
    t.equal(route, 'no-route', `${when}: no inbound entry, no route`)
  } else {
    t.ok(route.startsWith('routed:') && inbound.includes(route.slice('routed:'.length)), `${when}: routed to exactly one of the inbound entries`, { route, holdings })
  }
}

export function summarize (world: World, result: AssignResult): string {
  if (result.status === 'other-organization' || result.status === 'inbound-held') {
    return `${result.status}[${result.holders.map((holder) => nameOf(world, holder.userId)).join(',')}]`
  }
  return result.status
}
