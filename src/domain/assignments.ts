/**
 * The phone-number assignments held by one user, and the pure list logic that
 * keeps them consistent. Nothing here knows about HTTP or the database, so the
 * rules (one entry per key, at most one default per provider) are tested once.
 */
import type { Static } from '@sinclair/typebox'
import { OrgAssignPhoneNumberRequest } from '../../schemas/generated/typebox.js'

/** The contract's provider enum, one source: schemas/openapi.yaml through the generated schema. */
export type Provider = Static<typeof OrgAssignPhoneNumberRequest.properties.provider>
export const PROVIDERS: readonly Provider[] = Object.freeze([...(OrgAssignPhoneNumberRequest.properties.provider as unknown as { enum: Provider[] }).enum])

/** One entry of `users.<field>` as stored. */
export interface StoredAssignment {
  provider: Provider
  phoneNumber: string
  isDefault: boolean
  isInboundEnabled: boolean
  label?: string
  createdAt: Date
  updatedAt: Date
}

/** What a caller asks for; omitted flags mean `true`, an omitted label means none. */
export interface AssignmentInput {
  provider: Provider
  phoneNumber: string
  isDefault?: boolean | undefined
  isInboundEnabled?: boolean | undefined
  label?: string | undefined
}

export interface AssignmentKey {
  provider: Provider
  phoneNumber: string
}

export interface UpsertOutcome {
  /** The whole list to store, or `undefined` when the stored list already matches the request. */
  next: StoredAssignment[] | undefined
  /** The entry as it is (or will be) stored. */
  assignment: StoredAssignment
}

/** Other code may store anything in the array; only objects can be ours. */
function isObject (entry: unknown): entry is Record<string, unknown> {
  return typeof entry === 'object' && entry !== null && !Array.isArray(entry)
}

/** An entry that carries one of our keys (other code's entries are never changed). */
export function isOurs (entry: unknown): entry is Record<string, unknown> {
  return isObject(entry) && typeof entry['phoneNumber'] === 'string' && PROVIDERS.includes(entry['provider'] as Provider)
}

function isSameKey (entry: unknown, key: AssignmentKey): boolean {
  return isObject(entry) && entry['phoneNumber'] === key.phoneNumber && entry['provider'] === key.provider
}

/** The entry of that key, skipping whatever other code stored beside it. */
export function findEntry (current: readonly unknown[], key: AssignmentKey): StoredAssignment | undefined {
  return current.find((entry) => isSameKey(entry, key)) as StoredAssignment | undefined
}

function isValidDate (value: unknown): value is Date {
  return value instanceof Date && !Number.isNaN(value.getTime())
}

/** A stored date as a Date, when it can be read as one (other code may store strings or numbers). */
export function readDate (value: unknown): Date | undefined {
  if (isValidDate(value)) return value
  if (typeof value !== 'string' && typeof value !== 'number') return undefined
  const date = new Date(value)
  return Number.isNaN(date.getTime()) ? undefined : date
}

/** An entry every field of which the contract can answer with; listings skip the others. */
export function isListable (entry: unknown): entry is StoredAssignment {
  return isOurs(entry) &&
    typeof entry['isDefault'] === 'boolean' &&
    typeof entry['isInboundEnabled'] === 'boolean' &&
    (entry['label'] === undefined || typeof entry['label'] === 'string') &&
    isValidDate(entry['createdAt']) &&
    isValidDate(entry['updatedAt'])
}

/**
 * Adds the (provider, phoneNumber) entry or updates it in place, clearing the
 * other defaults of that provider when the entry becomes the default.
 * Returns `next: undefined` when nothing would change, so a repeated request
 * costs no write and leaves `updatedAt` alone.
 */
export function upsertAssignment (current: readonly StoredAssignment[], input: AssignmentInput, now: Date): UpsertOutcome {
  const isDefault = input.isDefault ?? true
  const isInboundEnabled = input.isInboundEnabled ?? true
  const label = input.label

  const index = current.findIndex((entry) => isSameKey(entry, input))
  const existing = index === -1 ? undefined : current[index]
  // An entry written by other code with odd dates is rewritten with valid ones,
  // so the answer can always be built from what is stored.
  const entryUnchanged = existing !== undefined &&
    isValidDate(existing.createdAt) &&
    isValidDate(existing.updatedAt) &&
    existing.isDefault === isDefault &&
    existing.isInboundEnabled === isInboundEnabled &&
    existing.label === label
  const isOtherDefault = (entry: unknown, i: number): boolean => i !== index && isOurs(entry) && entry['isDefault'] === true && entry['provider'] === input.provider
  const otherDefaultToClear = isDefault && current.some(isOtherDefault)

  if (existing !== undefined && entryUnchanged && !otherDefaultToClear) {
    return { next: undefined, assignment: existing }
  }

  const assignment: StoredAssignment = {
    provider: input.provider,
    phoneNumber: input.phoneNumber,
    isDefault,
    isInboundEnabled,
    ...(label === undefined ? {} : { label }),
    createdAt: readDate(existing?.createdAt) ?? now,
    updatedAt: now
  }

  const next = current.map((entry, i) => {
    if (i === index) return assignment
    if (otherDefaultToClear && isOtherDefault(entry, i)) return { ...entry, isDefault: false, updatedAt: now }
    return entry
  })
  if (index === -1) next.push(assignment)
  return { next, assignment }
}

/** The list without the entry of that key; `undefined` when the user does not hold it. */
export function removeAssignment (current: readonly StoredAssignment[], key: AssignmentKey): StoredAssignment[] | undefined {
  const index = current.findIndex((entry) => isSameKey(entry, key))
  if (index === -1) return undefined
  return current.filter((_, i) => i !== index)
}

/**
 * Reads the stored array defensively: documents written by other code may
 * lack the field or hold entries of another shape, which are kept untouched
 * in place rather than dropped (they are not ours to delete).
 */
export function readAssignments (raw: unknown): StoredAssignment[] {
  return Array.isArray(raw) ? raw as StoredAssignment[] : []
}
