/**
 * Who holds a phone number, read from the user documents (the truth). Pure:
 * the store queries the users, these functions judge what came back, so the
 * ownership and routing rules are decided in one place.
 */
import type { Document, ObjectId } from 'mongodb'
import { isOurs, readAssignments, type Provider, type StoredAssignment } from './assignments.js'

export interface NumberHolder {
  userId: ObjectId
  organizationId: unknown
  assignment: StoredAssignment
}

/** Matches what a write filter matches: an ObjectId of that value (not its hex string). */
export function isSameObjectId (id: ObjectId, value: unknown): boolean {
  return (value as { _bsontype?: unknown } | null)?._bsontype === 'ObjectId' && id.equals(value as ObjectId)
}

/** Every entry of ours for that number (any provider, or only `provider`) in the documents read. */
export function holdersOf (users: readonly Document[], field: string, phoneNumber: string, provider?: Provider): NumberHolder[] {
  const holders: NumberHolder[] = []
  for (const user of users) {
    for (const entry of readAssignments(user[field])) {
      if (!isOurs(entry) || entry['phoneNumber'] !== phoneNumber) continue
      if (provider !== undefined && entry['provider'] !== provider) continue
      holders.push({ userId: user['_id'] as ObjectId, organizationId: user['organizationId'], assignment: entry as StoredAssignment })
    }
  }
  return holders
}

/** The holders that belong to another organization than `organizationId` (rule 1). */
export function outsideOrganization (holders: readonly NumberHolder[], organizationId: ObjectId): NumberHolder[] {
  return holders.filter((holder) => !isSameObjectId(organizationId, holder.organizationId))
}

/** The holders that route inbound calls (rule 2 allows one on the whole platform). */
export function inboundHolders (holders: readonly NumberHolder[]): NumberHolder[] {
  return holders.filter((holder) => holder.assignment.isInboundEnabled === true)
}

/** Whether the holder is the assignment (user, provider). */
export function isAssignment (holder: NumberHolder, userId: ObjectId, provider: Provider): boolean {
  return isSameObjectId(userId, holder.userId) && holder.assignment.provider === provider
}
