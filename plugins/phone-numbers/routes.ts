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
  PostOrganizationsPhoneNumbersBulk,
  PostOrganizationsPhoneNumbersTransfer,
  type OrgAssignPhoneNumberRequest,
  type OrgBulkAssignResult
} from '../../schemas/generated/typebox.js'
import { assignInBulk, firstRepeatedItem, type BulkAssignItem, type BulkAssignOutcome } from '../../src/domain/bulk-assign.js'
import type { AssignmentInput } from '../../src/domain/assignments.js'
import { toAssignmentJson as toResponseAssignment, toEventJson, type ChangeContext } from '../../src/domain/change-events.js'
import type { PhoneNumberStore } from '../../src/domain/store.js'
import { AmbiguousInboundRouteError, NoInboundRouteError, OrganizationNotFoundError, ValidationError } from './errors.js'
import { describeHolders, failureOf, idText } from './store-failures.js'
import { actorOf, ROUTE_LOOKUP } from './auth.js'
import type { ListCursorCodec } from './list-cursor.js'
import { describeForHostOpenapi } from './host-openapi.js'
import { contractErrorOf } from './error-handler.js'
import { forgetIdempotentAnswer } from './idempotency.js'
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

/**
 * Body limit of the bulk assign (or the plugin's, when larger): 1,000 items
 * of about 200 bytes each, with room for labels.
 */
export const BULK_BODY_LIMIT = 262_144

/** Only the assignment's own fields go further: unknown body fields are never stored. */
function assignmentInputOf ({ provider, phoneNumber, isDefault, isInboundEnabled, label }: OrgAssignPhoneNumberRequest): AssignmentInput {
  return { provider, phoneNumber, isDefault, isInboundEnabled, label }
}

/** One item's result as the single assign would answer it: 200 with the entry, or the same error texts. */
function bulkResultOf (request: FastifyRequest, index: number, item: OrgAssignPhoneNumberRequest, outcome: BulkAssignOutcome): OrgBulkAssignResult {
  const result = outcome.status === 'fulfilled' ? outcome.value : undefined
  if (result?.status === 'assigned') return { index, status: 200, assignment: toResponseAssignment(result.assignment, item.targetUserId) }
  const error = result === undefined ? (outcome as PromiseRejectedResult).reason as Error : failureOf(result, item.provider, item.phoneNumber)
  const { status, body } = contractErrorOf(error, request)
  // Items that failed on the server are worth a retry: the answer is not replayed (the other items' repeat writes nothing).
  if (status >= 500) forgetIdempotentAnswer(request)
  return { index, status, ...body }
}

/** Recorded in the events of the changes a request makes. */
function changeBy (request: FastifyRequest): ChangeContext {
  return { actor: actorOf(request), requestId: request.id }
}

const phoneNumberRoutes: FastifyPluginAsyncTypebox<PhoneNumberRoutesOptions> = async (fastify, { store, lookUpRoute, bodyLimit, cursors, operationIdPrefix }) => {
  // Documentation only (a host's @fastify/swagger): the schemas below still validate and serialise.
  await describeForHostOpenapi(fastify, [
    PostOrganizationsPhoneNumbers, DeleteOrganizationsPhoneNumbers, PostOrganizationsPhoneNumbersTransfer, PostOrganizationsPhoneNumbersBulk,
    GetPhoneNumbersInboundRoute, GetOrganizationsPhoneNumbersEvents, GetOrganizationsPhoneNumbers
  ], operationIdPrefix)

  fastify.route({
    ...PostOrganizationsPhoneNumbers,
    bodyLimit,
    handler: async (request) => {
      const { targetUserId, provider, phoneNumber } = request.body
      const result = await store.assign(
        new ObjectId(request.params.organizationId),
        new ObjectId(targetUserId),
        assignmentInputOf(request.body),
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
    ...PostOrganizationsPhoneNumbersBulk,
    bodyLimit: Math.max(bodyLimit, BULK_BODY_LIMIT),
    handler: async (request) => {
      const { assignments } = request.body
      const items: BulkAssignItem[] = assignments.map((item) => ({ userId: new ObjectId(item.targetUserId), input: assignmentInputOf(item) }))
      const repeated = firstRepeatedItem(items)
      if (repeated !== undefined) {
        throw new ValidationError(`body/assignments/${repeated.index} names the same targetUserId, provider and phoneNumber as body/assignments/${repeated.first}; nothing was written`)
      }
      const outcomes = await assignInBulk(store, new ObjectId(request.params.organizationId), items, changeBy(request))
      return { results: outcomes.map((outcome, index) => bulkResultOf(request, index, assignments[index]!, outcome)) }
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
        throw new AmbiguousInboundRouteError(`Inbound calls for ${phoneNumber} are routed by ${result.holders.length} assignments: ${describeHolders(result.holders)}; fix the data (checkIntegrity(db) from fastify-org-phone-numbers/integrity lists every such number)`)
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
