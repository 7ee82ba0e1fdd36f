/** What the integrity check reports: its options and every kind of finding. */
import type { Provider } from '../../src/domain/assignments.js'
import type { ClaimRepair, PhoneNumberStore } from '../../src/domain/store.js'

export interface IntegrityOptions {
  usersCollection?: string | undefined
  /** Only used to create the store for repairs when `store` is not given. */
  organizationsCollection?: string | undefined
  phoneNumbersField?: string | undefined
  claimsCollection?: string | undefined
  /** A step recorded on a claim more recently than this may have a write in flight (reported as `inFlight`). Default 100. */
  inFlightGraceMs?: number | undefined
  /** The store whose `repairClaim` repairs stale claims. Default: one created with the options above. */
  store?: PhoneNumberStore | undefined
  /** Let the store repair the stale claims (never the user documents). Default false. */
  repair?: boolean | undefined
  /** The time ages are measured from. Default: now. */
  now?: Date | undefined
}

/** A user's entry for a number. Ids are hex strings; other code's odd ids are shown as JSON, a missing one as null. */
export interface HolderReport {
  userId: string | null
  organizationId: string | null
  provider: Provider
  isInboundEnabled: boolean
}

export interface NumberViolation {
  phoneNumber: string
  holders: HolderReport[]
}

export interface MalformedEntry {
  userId: string | null
  /** Index in the user's numbers array. */
  index: number
  reason: string
}

export interface MalformedField {
  userId: string | null
  /** What the field holds: 'string', 'object', 'number', 'boolean', ... */
  type: string
  reason: string
}

export type StaleReason =
  /** No user holds the number. */
  | 'no-holder'
  /** No user of the claim's organization holds the number. */
  | 'other-organization'
  /** The claim's inbound route names an assignment that does not route the number inbound. */
  | 'route-not-backed'
  /** The claim records a transfer that has not finished. */
  | 'pending-transfer'

export interface StaleClaim {
  phoneNumber: string
  reasons: StaleReason[]
  organizationId: string | null
  inbound: { userId: string | null, provider: string } | null
  /** The users holding the number now. */
  holders: HolderReport[]
  /** The process whose step holds the claim's writer slot, and when it recorded it. */
  writtenBy: string | null
  writtenAt: string | null
  /** Time since that step was recorded, ms. */
  ageMs: number | null
  /** Younger than the in-flight grace: its write may still be on its way (a repair waits that long, then fences it). */
  inFlight: boolean
  transfer?: {
    provider: string
    fromUserId: string | null
    toUserId: string | null
    committed: boolean
    by: string | null
    at: string | null
    /** Time since the transfer began, ms. */
    ageMs: number | null
  }
}

export interface RepairReport extends ClaimRepair {
  phoneNumber: string
  /** The claim is backed by the users now (or gone). */
  fixed: boolean
}

export interface IntegrityReport {
  ok: boolean
  database: string
  usersCollection: string
  phoneNumbersField: string
  claimsCollection: string
  inFlightGraceMs: number
  checkedAt: string
  scanned: { users: number, numbers: number, claims: number }
  numbersInTwoOrganizations: NumberViolation[]
  doubleInboundRoutes: NumberViolation[]
  malformedEntries: MalformedEntry[]
  malformedFields: MalformedField[]
  staleClaims: StaleClaim[]
  /** Whether a repair was asked for. */
  repaired: boolean
  repairs: RepairReport[]
}
