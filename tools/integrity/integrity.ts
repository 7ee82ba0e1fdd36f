/**
 * The integrity check of data already stored: the ownership and routing rules
 * over every user document, and the claims against the users (the truth).
 * Read-only unless asked to repair, and then it only lets the store repair
 * claims (`repairClaim` decides what is settled): which holder keeps a number
 * when the user documents break a rule is a business decision, so those are
 * reported, never changed.
 *
 * The users are read in one streamed pass (only `_id`, `organizationId` and
 * the numbers field), keeping a per-number index of the holders; the claims
 * in a second streamed pass. After repairs, only the repaired numbers (and
 * the users a transfer recovery wrote) are read again.
 */
import type { Db, Document, ObjectId } from 'mongodb'
import { isListable, isOurs, PROVIDERS, type Provider } from '../../src/domain/assignments.js'
import type { ClaimDocument } from '../../src/domain/number-claims.js'
import { holdersOf, inboundHolders, isAssignment, isSameObjectId, outsideOrganization, type NumberHolder } from '../../src/domain/number-holders.js'
import { createPhoneNumberStore, DEFAULT_STORE_OPTIONS } from '../../src/domain/store.js'
import type { IntegrityOptions, HolderReport, NumberViolation, MalformedEntry, MalformedField, StaleReason, StaleClaim, RepairReport, IntegrityReport } from './report.js'

function isObjectId (value: unknown): value is ObjectId {
  return (value as { _bsontype?: unknown } | null)?._bsontype === 'ObjectId'
}

/** An id as the report shows it: hex for an ObjectId, JSON for anything else other code stored, null when missing. */
export function describeId (value: unknown): string | null {
  if (value === undefined || value === null) return null
  if (isObjectId(value)) return value.toHexString()
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

function describeDate (value: unknown): string | null {
  return value instanceof Date && !Number.isNaN(value.getTime()) ? value.toISOString() : null
}

function ageOf (value: unknown, now: Date): number | null {
  return value instanceof Date && !Number.isNaN(value.getTime()) ? now.getTime() - value.getTime() : null
}

/** 'null', 'array', or the typeof of a value. */
function kindOf (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (value instanceof Date) return 'date'
  return typeof value
}

function article (kind: string): string {
  return /^[aeiou]/.test(kind) ? `an ${kind}` : `a ${kind}`
}

function fieldProblem (entry: Record<string, unknown>, name: string, expected: string, accepts: (value: unknown) => boolean, optional = false): string | undefined {
  if (!(name in entry) || entry[name] === undefined) return optional ? undefined : `${name} is missing`
  const value = entry[name]
  return accepts(value) ? undefined : `${name} is ${article(kindOf(value))}, not ${article(expected)}`
}

function isValidDate (value: unknown): boolean {
  return value instanceof Date && !Number.isNaN(value.getTime())
}

/** Why an entry is not listable, in a few words. */
export function entryProblem (entry: unknown): string | undefined {
  if (isListable(entry)) return undefined
  if (entry === null) return 'null entry'
  if (typeof entry !== 'object' || Array.isArray(entry) || entry instanceof Date) return `${article(kindOf(entry))}, not an object`
  const record = entry as Record<string, unknown>
  const problems: string[] = []
  const phoneNumber = fieldProblem(record, 'phoneNumber', 'string', (value) => typeof value === 'string')
  if (phoneNumber !== undefined) problems.push(phoneNumber)
  if (!('provider' in record) || record['provider'] === undefined) {
    problems.push('provider is missing')
  } else if (!PROVIDERS.includes(record['provider'] as Provider)) {
    problems.push(`provider ${describeId(record['provider']) ?? 'null'} is not one of ${PROVIDERS.join(', ')}`)
  }
  for (const [name, expected, accepts, optional] of [
    ['isDefault', 'boolean', (value: unknown) => typeof value === 'boolean', false],
    ['isInboundEnabled', 'boolean', (value: unknown) => typeof value === 'boolean', false],
    ['label', 'string', (value: unknown) => typeof value === 'string', true],
    ['createdAt', 'date', isValidDate, false],
    ['updatedAt', 'date', isValidDate, false]
  ] as const) {
    const problem = fieldProblem(record, name, expected, accepts, optional)
    if (problem !== undefined) problems.push(problem === `${name} is a date, not a date` ? `${name} is an invalid date` : problem)
  }
  return problems.length > 0 ? problems.join('; ') : 'not a listable entry'
}

function holderReport (holder: NumberHolder): HolderReport {
  return {
    userId: describeId(holder.userId),
    organizationId: describeId(holder.organizationId),
    provider: holder.assignment.provider,
    isInboundEnabled: holder.assignment.isInboundEnabled === true
  }
}

/** Whether the holders belong to more than one organization (rule 1). */
function spansOrganizations (holders: readonly NumberHolder[]): boolean {
  const reference = holders.find((holder) => isObjectId(holder.organizationId))?.organizationId
  // Other code's organization ids that are not ObjectIds are compared as written.
  if (!isObjectId(reference)) return new Set(holders.map((holder) => describeId(holder.organizationId))).size > 1
  return outsideOrganization(holders, reference).length > 0
}

/** Two inbound routes that are a transfer's source and target, while its claim records the transfer. */
function explainedByTransfer (routes: readonly NumberHolder[], claim: ClaimDocument | undefined): boolean {
  const pending = claim?.transfer
  if (pending === undefined || routes.length !== 2) return false
  return routes.every((holder) => isAssignment(holder, pending.fromUserId, pending.provider) || isAssignment(holder, pending.toUserId, pending.provider))
}

/** The entries one user document contributes: its malformed parts and the numbers it holds. */
interface UserFindings {
  malformedEntries: MalformedEntry[]
  malformedField: MalformedField | undefined
  numbers: Set<string>
}

function inspectUser (user: Document, field: string): UserFindings {
  const userId = describeId(user['_id'])
  const stored: unknown = user[field]
  const findings: UserFindings = { malformedEntries: [], malformedField: undefined, numbers: new Set() }
  if (stored === undefined || stored === null) return findings
  if (!Array.isArray(stored)) {
    const type = kindOf(stored)
    findings.malformedField = { userId, type, reason: `${field} is ${article(type)}, not an array` }
    return findings
  }
  stored.forEach((entry, index) => {
    const problem = entryProblem(entry)
    if (problem !== undefined) findings.malformedEntries.push({ userId, index, reason: problem })
    // Entries that carry one of our keys count as holders, listable or not (the rules count them too).
    if (isOurs(entry)) findings.numbers.add(entry['phoneNumber'] as string)
  })
  return findings
}

/** Why the users do not back the claim (empty: they do). */
function staleReasons (claim: ClaimDocument, holders: readonly NumberHolder[]): StaleReason[] {
  const reasons: StaleReason[] = []
  if (holders.length === 0) {
    reasons.push('no-holder')
  } else {
    if (!holders.some((holder) => isObjectId(claim.organizationId) && isSameObjectId(claim.organizationId, holder.organizationId))) reasons.push('other-organization')
    const route = claim.inbound
    if (route != null && !inboundHolders(holders).some((holder) => isObjectId(route.userId) && isAssignment(holder, route.userId, route.provider))) {
      reasons.push('route-not-backed')
    }
  }
  if (claim.transfer !== undefined) reasons.push('pending-transfer')
  return reasons
}

function staleClaim (claim: ClaimDocument, reasons: StaleReason[], holders: readonly NumberHolder[], now: Date, graceMs: number): StaleClaim {
  const writer = claim.writer ?? undefined
  const ageMs = writer === undefined ? null : ageOf(writer.at, now)
  const report: StaleClaim = {
    phoneNumber: String(claim._id),
    reasons,
    organizationId: describeId(claim.organizationId),
    inbound: claim.inbound == null ? null : { userId: describeId(claim.inbound.userId), provider: String(claim.inbound.provider) },
    holders: holders.map(holderReport),
    writtenBy: writer === undefined ? null : typeof writer.by === 'string' ? writer.by : describeId(writer.by),
    writtenAt: writer === undefined ? null : describeDate(writer.at),
    ageMs,
    inFlight: ageMs !== null && ageMs < graceMs
  }
  const transfer = claim.transfer
  if (transfer !== undefined) {
    report.transfer = {
      provider: String(transfer.provider),
      fromUserId: describeId(transfer.fromUserId),
      toUserId: describeId(transfer.toUserId),
      committed: transfer.committed === true,
      by: typeof transfer.by === 'string' ? transfer.by : describeId(transfer.by),
      at: describeDate(transfer.at),
      ageMs: ageOf(transfer.at, now)
    }
  }
  return report
}

export async function checkIntegrity (db: Db, options: IntegrityOptions = {}): Promise<IntegrityReport> {
  const usersCollection = options.usersCollection ?? DEFAULT_STORE_OPTIONS.usersCollection
  const field = options.phoneNumbersField ?? DEFAULT_STORE_OPTIONS.phoneNumbersField
  const claimsCollection = options.claimsCollection ?? DEFAULT_STORE_OPTIONS.claimsCollection
  const graceMs = options.inFlightGraceMs ?? DEFAULT_STORE_OPTIONS.inFlightGraceMs
  const now = options.now ?? new Date()
  const users = db.collection(usersCollection)
  const claims = db.collection<ClaimDocument>(claimsCollection)
  const projection = { _id: 1, organizationId: 1, [field]: 1 }
  const numberField = `${field}.phoneNumber`

  // Only the malformed parts and the per-number index stay in memory.
  const malformedEntries = new Map<string, MalformedEntry[]>()
  const malformedFields = new Map<string, MalformedField>()
  const holdersByNumber = new Map<string, NumberHolder[]>()
  const keyOf = (user: Document): string => describeId(user['_id']) ?? 'null'

  /** Records (or, read again, replaces in place) what a user document shows; returns the numbers it holds. */
  function recordMalformed (user: Document): Set<string> {
    const findings = inspectUser(user, field)
    const key = keyOf(user)
    if (findings.malformedEntries.length > 0) malformedEntries.set(key, findings.malformedEntries)
    else malformedEntries.delete(key)
    if (findings.malformedField !== undefined) malformedFields.set(key, findings.malformedField)
    else malformedFields.delete(key)
    return findings.numbers
  }

  function record (user: Document): void {
    for (const phoneNumber of recordMalformed(user)) {
      const holders = holdersByNumber.get(phoneNumber) ?? []
      holders.push(...holdersOf([user], field, phoneNumber))
      holdersByNumber.set(phoneNumber, holders)
    }
  }

  let scannedUsers = 0
  for await (const user of users.find({ [field]: { $exists: true } }, { projection }).sort({ _id: 1 })) {
    scannedUsers++
    record(user)
  }

  // Claims: stale ones are kept (few), and the numbers whose pending transfer explains two routes.
  const stale = new Map<string, { claim: ClaimDocument, reasons: StaleReason[] }>()
  const transferring = new Map<string, ClaimDocument>()
  let scannedClaims = 0
  for await (const claim of claims.find({}).sort({ _id: 1 })) {
    scannedClaims++
    const phoneNumber = String(claim._id)
    if (claim.transfer !== undefined) transferring.set(phoneNumber, claim)
    const reasons = staleReasons(claim, holdersByNumber.get(phoneNumber) ?? [])
    if (reasons.length > 0) stale.set(phoneNumber, { claim, reasons })
  }

  const repairs: RepairReport[] = []
  if (options.repair === true && stale.size > 0) {
    const store = options.store ?? createPhoneNumberStore(db, {
      usersCollection,
      organizationsCollection: options.organizationsCollection,
      phoneNumbersField: field,
      claimsCollection,
      inFlightGraceMs: graceMs
    })
    for (const [phoneNumber, { claim }] of stale) {
      const answer = await store.repairClaim(phoneNumber)
      // Read the number again: the users a transfer recovery may have written, and every holder.
      const touchedUsers = claim.transfer === undefined ? [] : [claim.transfer.fromUserId, claim.transfer.toUserId]
      const documents = await users.find({ $or: [{ _id: { $in: touchedUsers } }, { [numberField]: phoneNumber }] }, { projection }).toArray()
      for (const user of documents) {
        if (touchedUsers.some((id) => isSameObjectId(id, user['_id']))) recordMalformed(user)
      }
      const holders = holdersOf(documents, field, phoneNumber)
      if (holders.length > 0) holdersByNumber.set(phoneNumber, holders)
      else holdersByNumber.delete(phoneNumber)

      const after = await claims.findOne({ _id: phoneNumber })
      if (after?.transfer !== undefined) transferring.set(phoneNumber, after)
      else transferring.delete(phoneNumber)
      const reasons = after === null ? [] : staleReasons(after, holders)
      if (after !== null && reasons.length > 0) stale.set(phoneNumber, { claim: after, reasons })
      else stale.delete(phoneNumber)
      repairs.push({ phoneNumber, ...answer, fixed: reasons.length === 0 })
    }
  }

  const numbersInTwoOrganizations: NumberViolation[] = []
  const doubleInboundRoutes: NumberViolation[] = []
  const numbers = [...holdersByNumber.keys()].sort()
  for (const phoneNumber of numbers) {
    const holders = holdersByNumber.get(phoneNumber) ?? []
    if (spansOrganizations(holders)) numbersInTwoOrganizations.push({ phoneNumber, holders: holders.map(holderReport) })
    const routes = inboundHolders(holders)
    // Mid-transfer the source and the target both route it; the claim says which is live
    // (a transfer left half done is a stale claim, reported there).
    if (routes.length > 1 && !explainedByTransfer(routes, transferring.get(phoneNumber))) {
      doubleInboundRoutes.push({ phoneNumber, holders: routes.map(holderReport) })
    }
  }

  const staleClaims = [...stale.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([phoneNumber, { claim, reasons }]) => staleClaim(claim, reasons, holdersByNumber.get(phoneNumber) ?? [], now, graceMs))
  const report: IntegrityReport = {
    ok: false,
    database: db.databaseName,
    usersCollection,
    phoneNumbersField: field,
    claimsCollection,
    inFlightGraceMs: graceMs,
    checkedAt: now.toISOString(),
    scanned: { users: scannedUsers, numbers: holdersByNumber.size, claims: scannedClaims },
    numbersInTwoOrganizations,
    doubleInboundRoutes,
    malformedEntries: [...malformedEntries.values()].flat(),
    malformedFields: [...malformedFields.values()],
    staleClaims,
    repaired: options.repair === true,
    repairs
  }
  report.ok = numbersInTwoOrganizations.length === 0 && doubleInboundRoutes.length === 0 &&
    report.malformedEntries.length === 0 && report.malformedFields.length === 0 && staleClaims.length === 0
  return report
}
