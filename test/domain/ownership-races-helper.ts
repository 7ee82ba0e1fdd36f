/**
 * Shared by the ownership-races-*.test.ts files (races on one phone number,
 * store level): the seed, fresh worlds (organizations, users, a number), the
 * readers of the stored state, and the invariants every settled state keeps.
 */
import type { Test } from 'tap'
import { ObjectId, type Db } from 'mongodb'
import type { AssignResult, PhoneNumberStore, TransferResult } from '../../src/domain/store.js'
import type { ClaimDocument } from '../../src/domain/number-claims.js'
import { FERRETDB_NON_ATOMIC_UPDATES, TEST_BACKEND } from '../helper-database.js'
import { seededRandom } from '../seeded-random.js'

export const FERRETDB = TEST_BACKEND === 'ferretdb'
export const PROVIDER = 'twilio' as const
export const SEED = Number(process.env['OWNERSHIP_RACE_SEED'] ?? 20261128)

/** Races across two store instances: FerretDB's defect, not the store's, when they fail there. */
export const crossInstance = { todo: FERRETDB_NON_ATOMIC_UPDATES }
export const sameInstance = {}

export const random = seededRandom

export interface Member { name: string, id: ObjectId, organization: string, organizationId: ObjectId }

export interface World {
  phoneNumber: string
  members: Member[]
  byName: Map<string, Member>
  byId: Map<string, Member>
  /** Organization ids (hex) to `orgA`, `orgB`... */
  organizationNames: Map<string, string>
}

export function member (world: World, name: string): Member {
  const found = world.byName.get(name)
  if (found === undefined) throw new Error(`no user ${name}`)
  return found
}

export function nameOf (world: World, id: unknown): string {
  if (!(id instanceof ObjectId)) return String(id)
  return world.byId.get(id.toHexString())?.name ?? world.organizationNames.get(id.toHexString()) ?? id.toHexString()
}

/** One stored entry of the number, as the users collection holds it. */
export interface Holding { user: string, organization: string, inbound: boolean, label: string | undefined }

/** findInboundRoute's answer as `routed:A1`, `no-route` or `ambiguous:A1,A2`. */
export async function routeOf (world: World, store: PhoneNumberStore): Promise<string> {
  const route = await store.findInboundRoute(world.phoneNumber)
  if (route.status === 'routed') return `routed:${nameOf(world, route.holder.userId)}`
  if (route.status === 'no-route') return 'no-route'
  return `ambiguous:${route.holders.map((holder) => nameOf(world, holder.userId)).sort().join(',')}`
}

export function holdersOfResult (world: World, result: AssignResult | TransferResult): string[] {
  return result.status === 'other-organization' || result.status === 'inbound-held'
    ? result.holders.map((holder) => nameOf(world, holder.userId))
    : []
}

/** seedWorld and the readers of the stored state, on this test file's database. */
export function raceWorlds (db: Db): {
  seedWorld: (organizations: number, perOrganization: number) => Promise<World>
  holdingsOf: (world: World) => Promise<Holding[]>
  claimOf: (world: World) => Promise<ClaimDocument | null>
  checkInvariants: (t: Test, world: World, store: PhoneNumberStore, when: string, extra: object, crossInstanceLeaseMs?: number) => Promise<Holding[]>
} {
  let numberSequence = 0

  /** Fresh organizations (`orgA`, `orgB`, ...) with `perOrganization` users each (`A1`, `A2`, ..., `B1`, ...), and a fresh number. */
  async function seedWorld (organizations: number, perOrganization: number): Promise<World> {
    const members: Member[] = []
    const organizationDocuments: Array<{ _id: ObjectId }> = []
    for (let o = 0; o < organizations; o++) {
      const letter = String.fromCharCode(65 + o)
      const organizationId = new ObjectId()
      organizationDocuments.push({ _id: organizationId })
      for (let u = 1; u <= perOrganization; u++) {
        members.push({ name: `${letter}${u}`, id: new ObjectId(), organization: `org${letter}`, organizationId })
      }
    }
    await db.collection('organizations').insertMany(organizationDocuments)
    await db.collection('users').insertMany(members.map((member) => ({ _id: member.id, organizationId: member.organizationId, name: member.name })))
    numberSequence++
    return {
      phoneNumber: `+1905555${String(numberSequence).padStart(4, '0')}`,
      members,
      byName: new Map(members.map((member) => [member.name, member])),
      byId: new Map(members.map((member) => [member.id.toHexString(), member])),
      organizationNames: new Map(members.map((member) => [member.organizationId.toHexString(), member.organization]))
    }
  }

  async function holdingsOf (world: World): Promise<Holding[]> {
    const documents = await db.collection('users').find({ 'phoneNumbers.phoneNumber': world.phoneNumber }).toArray()
    const holdings: Holding[] = []
    for (const document of documents) {
      const entries: unknown = document['phoneNumbers']
      if (!Array.isArray(entries)) continue
      for (const entry of entries as Array<Record<string, unknown>>) {
        if (entry['phoneNumber'] !== world.phoneNumber) continue
        const user = nameOf(world, document['_id'])
        holdings.push({
          user,
          organization: world.byName.get(user)?.organization ?? String(document['organizationId']),
          inbound: entry['isInboundEnabled'] === true,
          label: typeof entry['label'] === 'string' ? entry['label'] : undefined
        })
      }
    }
    return holdings.sort((a, b) => a.user.localeCompare(b.user))
  }

  async function claimOf (world: World): Promise<ClaimDocument | null> {
    return await db.collection<ClaimDocument>('phoneNumberClaims').findOne({ _id: world.phoneNumber })
  }

  /** The invariants every settled state keeps: one organization, one inbound entry, the lookup agrees. */
  /**
   * `crossInstanceLeaseMs`: with two instances the claim may still name another
   * organization right after a round (a refused assign's claim that the other
   * instance's step kept from settling): harmless, since the rules are checked
   * against the users, and a repair corrects it at once (no lease to wait out).
   */
  async function checkInvariants (t: Test, world: World, store: PhoneNumberStore, when: string, extra: object, crossInstanceLeaseMs?: number): Promise<Holding[]> {
    const holdings = await holdingsOf(world)
    const organizations = [...new Set(holdings.map((holding) => holding.organization))]
    t.ok(organizations.length <= 1, `${when}: held by at most one organization`, { ...extra, organizations, holdings })
    const inbound = holdings.filter((holding) => holding.inbound)
    t.ok(inbound.length <= 1, `${when}: at most one inbound entry`, { ...extra, holdings })
    const route = await routeOf(world, store)
    t.not(route.split(':')[0], 'ambiguous', `${when}: findInboundRoute is never ambiguous`, { ...extra, route })
    t.equal(route, inbound.length === 1 ? `routed:${inbound[0]!.user}` : 'no-route', `${when}: findInboundRoute answers the inbound entry`, { ...extra, holdings })
    const claim = await claimOf(world)
    t.equal(claim?.transfer, undefined, `${when}: no transfer record is left on the claim`, extra)
    if (claim !== null && holdings.length > 0) {
      let named = nameOf(world, claim.organizationId)
      if (named !== organizations[0] && crossInstanceLeaseMs !== undefined) {
        t.comment(`${when}: the claim names ${named}, the holders are in ${organizations[0] ?? ''}: repairing it`)
        await store.repairClaim(world.phoneNumber)
        const repaired = await claimOf(world)
        named = repaired === null ? organizations[0] ?? '' : nameOf(world, repaired.organizationId)
      }
      t.equal(named, organizations[0] ?? '', `${when}: the claim names the holders' organization${crossInstanceLeaseMs === undefined ? '' : ' (once repaired)'}`, { ...extra, holdings })
    }
    return holdings
  }

  return { seedWorld, holdingsOf, claimOf, checkInvariants }
}
