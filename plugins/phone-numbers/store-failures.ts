/**
 * How the store's refusals read in the contract: one error per outcome,
 * shared by the single routes (which throw it) and the bulk assign (which
 * reports it per item), so both answer an item with the same status and texts.
 */
import type { ObjectId } from 'mongodb'
import type { NumberHolder } from '../../src/domain/number-holders.js'
import type { AssignResult, RemoveResult, TransferResult } from '../../src/domain/store.js'
import {
  AlreadyHeldError,
  AssignmentNotFoundError,
  ConcurrentUpdateError,
  InboundRouteHeldError,
  MalformedUserDocumentError,
  OrganizationNotFoundError,
  OtherOrganizationError,
  PhoneNumberLimitError,
  SourceUserNotInOrganizationError,
  UserNotInOrganizationError
} from './errors.js'

/** An id as the contract shows it: the hex of an ObjectId, or the stored value as text (other code's ids). */
export function idText (value: unknown): string {
  return (value as { _bsontype?: unknown } | null)?._bsontype === 'ObjectId' ? (value as ObjectId).toHexString() : String(value)
}

export function describeHolders (holders: readonly NumberHolder[]): string {
  return holders.map((holder) => `user ${idText(holder.userId)} (${holder.assignment.provider}, organization ${idText(holder.organizationId)})`).join(', ')
}

export type StoreFailure = Exclude<AssignResult | RemoveResult | TransferResult, { status: 'assigned' | 'removed' | 'transferred' }>

export function failureOf (result: StoreFailure, provider: string, phoneNumber: string): Error {
  switch (result.status) {
    case 'organization-not-found': return new OrganizationNotFoundError()
    case 'user-not-found': return 'which' in result && result.which === 'from' ? new SourceUserNotInOrganizationError() : new UserNotInOrganizationError()
    case 'assignment-not-found': return new AssignmentNotFoundError(provider, phoneNumber)
    case 'already-held': return new AlreadyHeldError(provider, phoneNumber)
    case 'conflict': return new ConcurrentUpdateError()
    case 'limit-reached': return new PhoneNumberLimitError(result.limit)
    case 'malformed-field': return new MalformedUserDocumentError(result.field)
    // Another tenant's ids stay out of the answer: only that the number is taken.
    case 'other-organization': return new OtherOrganizationError(result.holders.length > 0
      ? `${phoneNumber} is held by users of another organization; it can be assigned here once they no longer hold it`
      : `${phoneNumber} is being assigned in another organization right now; retry later`)
    case 'inbound-held': return new InboundRouteHeldError(result.holders.length > 0
      ? `Inbound calls for ${phoneNumber} are already routed to ${describeHolders(result.holders)}; assign it with isInboundEnabled false, or switch that route off first`
      : `Another assignment of ${phoneNumber} is taking its inbound route right now; retry later`)
  }
}
