/**
 * How a listing pages: the filters an entry must meet, the order of entries
 * (user `_id`, then phone number, then provider), and positions in that order.
 * Pure, so the paging rules are tested once; the store runs the query.
 */
import type { Document, ObjectId } from 'mongodb'
import { isListable, type Provider, type StoredAssignment } from './assignments.js'

export interface ListFilter {
  userId?: ObjectId | undefined
  provider?: Provider | undefined
  /** The number starts with these characters, e.g. `+1416`. */
  phoneNumberPrefix?: string | undefined
  /** Case-insensitive substring of the label. */
  label?: string | undefined
  isInboundEnabled?: boolean | undefined
  isDefault?: boolean | undefined
}

/**
 * A place in the listing order: after the entry (phoneNumber, provider) of
 * that user, or after the whole user when they are absent.
 */
export interface ListPosition {
  userId: ObjectId
  phoneNumber?: string | undefined
  provider?: Provider | undefined
}

/** Regex metacharacters escaped: the client's text is matched literally, never as a pattern. */
export function escapeRegex (text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')
}

/**
 * The users query: the organization, the position, and each filter on the
 * array's dotted fields. Dotted conditions may be met by different entries of
 * one user, so `matchesFilter` decides per entry afterwards.
 */
export function listQuery (organizationId: ObjectId, field: string, filter: ListFilter, after: ListPosition | undefined): Document {
  const conditions: Document[] = [{ organizationId }]
  if (filter.userId !== undefined) conditions.push({ _id: filter.userId })
  if (after !== undefined) conditions.push({ _id: after.phoneNumber === undefined ? { $gt: after.userId } : { $gte: after.userId } })
  if (filter.provider !== undefined) conditions.push({ [`${field}.provider`]: filter.provider })
  if (filter.phoneNumberPrefix !== undefined) conditions.push({ [`${field}.phoneNumber`]: { $regex: `^${escapeRegex(filter.phoneNumberPrefix)}` } })
  if (filter.isInboundEnabled !== undefined) conditions.push({ [`${field}.isInboundEnabled`]: filter.isInboundEnabled })
  if (filter.isDefault !== undefined) conditions.push({ [`${field}.isDefault`]: filter.isDefault })
  if (filter.label !== undefined) conditions.push({ [`${field}.label`]: { $regex: escapeRegex(filter.label), $options: 'i' } })
  return conditions.length === 1 ? conditions[0]! : { $and: conditions }
}

/** Whether one stored entry meets every filter (the entry level of `listQuery`). */
export function matchesFilter (entry: StoredAssignment, filter: ListFilter): boolean {
  if (filter.provider !== undefined && entry.provider !== filter.provider) return false
  if (filter.phoneNumberPrefix !== undefined && !entry.phoneNumber.startsWith(filter.phoneNumberPrefix)) return false
  if (filter.isInboundEnabled !== undefined && entry.isInboundEnabled !== filter.isInboundEnabled) return false
  if (filter.isDefault !== undefined && entry.isDefault !== filter.isDefault) return false
  if (filter.label !== undefined && (entry.label === undefined || !entry.label.toLowerCase().includes(filter.label.toLowerCase()))) return false
  return true
}

function compareText (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** The order of entries within one user: phone number, then provider. */
export function compareEntries (a: StoredAssignment, b: StoredAssignment): number {
  return compareText(a.phoneNumber, b.phoneNumber) || compareText(a.provider, b.provider)
}

/**
 * The entries of one user to list, in order, after `after` when the position
 * is inside this user. Entries other code wrote in another shape are skipped.
 */
export function listableEntries (raw: unknown, filter: ListFilter, after: ListPosition | undefined): StoredAssignment[] {
  const entries = (Array.isArray(raw) ? raw : []).filter((entry): entry is StoredAssignment => isListable(entry) && matchesFilter(entry, filter))
  entries.sort(compareEntries)
  const { phoneNumber, provider } = after ?? {}
  if (phoneNumber === undefined || provider === undefined) return entries
  return entries.filter((entry) => compareEntries(entry, { phoneNumber, provider } as StoredAssignment) > 0)
}
