/**
 * The phone-number operations. Thin on purpose: take the validated request,
 * call the store, map its outcome to the contract. Types come from the
 * generated TypeBox schemas through the type provider.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { ObjectId } from 'mongodb'
import {
  DeleteOrganizationsPhoneNumbers,
  GetOrganizationsPhoneNumbers,
  GetOrganizationsPhoneNumbersEvents,
  GetPhoneNumbersInboundRoute,
  PostOrganizationsPhoneNumbers,
  PostOrganizationsPhoneNumbersTransfer
} from '../../schemas/generated/typebox.js'
import { toAssignmentJson as toResponseAssignment, toEventJson, type ChangeContext } from '../../src/domain/change-events.js'
import type { NumberHolder } from '../../src/domain/number-holders.js'
import type { AssignResult, PhoneNumberStore, RemoveResult, TransferResult } from '../../src/domain/store.js'
import {
  AlreadyHeldError,
  AmbiguousInboundRouteError,
  AssignmentNotFoundError,
  ConcurrentUpdateError,
  InboundRouteHeldError,
  MalformedUserDocumentError,
  NoInboundRouteError,
  OrganizationNotFoundError,
  OtherOrganizationError,
  PhoneNumberLimitError,
  SourceUserNotInOrganizationError,
  UserNotInOrganizationError,
  ValidationError
} from './errors.js'
import { actorOf, ROUTE_LOOKUP } from './auth.js'
import type { ListCursorCodec } from './list-cursor.js'
import { describeForHostOpenapi } from './host-openapi.js'
import type { InboundRouteLookup } from './route-cache.js'

export interface PhoneNumberRoutesOptions {
  store: PhoneNumberStore
  /** The inbound-route lookup: the store's, or through the route cache. */
  lookUpRoute: InboundRouteLookup
  bodyLimit: number
  cursors: ListCursorCodec
  /** Put before each operationId in a host's @fastify/swagger document only. */
  operationIdPrefix?: string | undefined
}

/** The contract's default `limit`. */
const DEFAULT_PAGE_SIZE = 100
/**
 * Users a page may read beyond its `limit`: with a sparse filter the page
 * ends short (with a cursor) rather than scan the whole organization.
 */
const SCAN_ALLOWANCE_USERS = 1000

/** Recorded in the events of the changes a request makes. */
function changeBy (request: FastifyRequest): ChangeContext {
  return { actor: actorOf(request), requestId: request.id }
}

/** An id as the contract shows it: the hex of an ObjectId, or the stored value as text (other code's ids). */
function idText (value: unknown): string {
  return (value as { _bsontype?: unknown } | null)?._bsontype === 'ObjectId' ? (value as ObjectId).toHexString() : String(value)
}

function describeHolders (holders: readonly NumberHolder[]): string {
  return holders.map((holder) => `user ${idText(holder.userId)} (${holder.assignment.provider}, organization ${idText(holder.organizationId)})`).join(', ')
}

type Failure = Exclude<AssignResult | RemoveResult | TransferResult, { status: 'assigned' | 'removed' | 'transferred' }>

function failureOf (result: Failure, provider: string, phoneNumber: string): Error {
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

const phoneNumberRoutes: FastifyPluginAsyncTypebox<PhoneNumberRoutesOptions> = async (fastify, { store, lookUpRoute, bodyLimit, cursors, operationIdPrefix }) => {
  // Documentation only (a host's @fastify/swagger): the schemas below still validate and serialise.
  await describeForHostOpenapi(fastify, [
    PostOrganizationsPhoneNumbers, DeleteOrganizationsPhoneNumbers, PostOrganizationsPhoneNumbersTransfer,
    GetPhoneNumbersInboundRoute, GetOrganizationsPhoneNumbersEvents, GetOrganizationsPhoneNumbers
  ], operationIdPrefix)

  fastify.route({
    ...PostOrganizationsPhoneNumbers,
    bodyLimit,
    handler: async (request) => {
      const { targetUserId, provider, phoneNumber, isDefault, isInboundEnabled, label } = request.body
      // Only the assignment's own fields go further: unknown body fields are never stored.
      const result = await store.assign(
        new ObjectId(request.params.organizationId),
        new ObjectId(targetUserId),
        { provider, phoneNumber, isDefault, isInboundEnabled, label },
        changeBy(request)
      )
      if (result.status !== 'assigned') throw failureOf(result, provider, phoneNumber)
      return {
        success: true,
        message: `${provider} phone number assigned`,
        assignment: toResponseAssignment(result.assignment, targetUserId)
      } as const
    }
  })

  fastify.route({
    ...DeleteOrganizationsPhoneNumbers,
    bodyLimit,
    handler: async (request) => {
      const { targetUserId, provider, phoneNumber } = request.body
      const result = await store.remove(
        new ObjectId(request.params.organizationId),
        new ObjectId(targetUserId),
        { provider, phoneNumber },
        changeBy(request)
      )
      if (result.status !== 'removed') throw failureOf(result, provider, phoneNumber)
      return { success: true, message: `${provider} phone number removed` } as const
    }
  })

  fastify.route({
    ...PostOrganizationsPhoneNumbersTransfer,
    bodyLimit,
    handler: async (request) => {
      const { fromUserId, toUserId, provider, phoneNumber, isDefault, label } = request.body
      if (fromUserId.toLowerCase() === toUserId.toLowerCase()) throw new ValidationError('fromUserId and toUserId must be two different users')
      const result = await store.transfer(new ObjectId(request.params.organizationId), {
        provider,
        phoneNumber,
        fromUserId: new ObjectId(fromUserId),
        toUserId: new ObjectId(toUserId),
        isDefault,
        label
      }, changeBy(request))
      if (result.status !== 'transferred') throw failureOf(result, provider, phoneNumber)
      return {
        success: true,
        message: `${provider} phone number transferred`,
        assignment: toResponseAssignment(result.assignment, toUserId)
      } as const
    }
  })

  fastify.route({
    ...GetPhoneNumbersInboundRoute,
    config: { [ROUTE_LOOKUP]: true },
    handler: async (request) => {
      const { phoneNumber } = request.params
      const fresh = /(^|[\s,])no-cache($|[\s,=])/i.test(request.headers['cache-control'] ?? '')
      const result = await lookUpRoute(phoneNumber, request.query.provider, fresh)
      if (result.status === 'no-route') throw new NoInboundRouteError(phoneNumber)
      if (result.status === 'ambiguous') {
        throw new AmbiguousInboundRouteError(`Inbound calls for ${phoneNumber} are routed by ${result.holders.length} assignments: ${describeHolders(result.holders)}; fix the data (checkIntegrity(db), exported by fastify-org-phone-numbers, lists every such number)`)
      }
      const { holder } = result
      const label = holder.assignment.label
      return {
        phoneNumber,
        provider: holder.assignment.provider,
        organizationId: idText(holder.organizationId),
        userId: idText(holder.userId),
        ...(typeof label === 'string' ? { label } : {})
      }
    }
  })

  fastify.route({
    ...GetOrganizationsPhoneNumbersEvents,
    handler: async (request) => {
      const { phoneNumber, targetUserId, type, after } = request.query
      const result = await store.listEvents(
        new ObjectId(request.params.organizationId),
        { phoneNumber, type, userId: targetUserId === undefined ? undefined : new ObjectId(targetUserId) },
        { limit: request.query.limit ?? DEFAULT_PAGE_SIZE, after }
      )
      if (result.status === 'organization-not-found') throw new OrganizationNotFoundError()
      if (result.status === 'unknown-cursor') throw new ValidationError('querystring/after is not the id of an event of this organization')
      return { events: result.events.map(toEventJson), nextCursor: result.next ?? null }
    }
  })

  fastify.route({
    ...GetOrganizationsPhoneNumbers,
    handler: async (request) => {
      const { organizationId } = request.params
      const { targetUserId, provider, phoneNumberPrefix, label, isInboundEnabled, isDefault, cursor } = request.query
      const limit = request.query.limit ?? DEFAULT_PAGE_SIZE
      const scope = { organizationId, filters: { targetUserId, provider, phoneNumberPrefix, label, isInboundEnabled, isDefault } }
      const after = cursor === undefined ? undefined : cursors.decode(scope, cursor)
      if (cursor !== undefined && after === undefined) {
        throw new ValidationError('querystring/cursor is not a cursor of this listing: it was altered, or was issued for another organization or other filters')
      }
      const result = await store.list(new ObjectId(organizationId), {
        userId: targetUserId === undefined ? undefined : new ObjectId(targetUserId),
        provider,
        phoneNumberPrefix,
        label,
        isInboundEnabled: isInboundEnabled === undefined ? undefined : isInboundEnabled === 'true',
        isDefault: isDefault === undefined ? undefined : isDefault === 'true'
      }, { limit, after, maxScannedUsers: limit + SCAN_ALLOWANCE_USERS })
      if (result.status !== 'listed') throw new OrganizationNotFoundError()
      return {
        phoneNumbers: result.assignments.map((entry) => toResponseAssignment(entry, entry.userId.toHexString())),
        nextCursor: result.next === undefined ? null : cursors.encode(scope, result.next)
      }
    }
  })
}

export default phoneNumberRoutes
