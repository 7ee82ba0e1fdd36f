/**
 * The three phone-number operations. Thin on purpose: take the validated
 * request, call the store, map its outcome to the contract. Types come from
 * the generated TypeBox schemas through the type provider.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ObjectId } from 'mongodb'
import {
  DeleteOrganizationsPhoneNumbers,
  GetOrganizationsPhoneNumbers,
  PostOrganizationsPhoneNumbers,
  type PhoneNumberAssignment
} from '../../schemas/generated/typebox.js'
import type { StoredAssignment } from '../../src/domain/assignments.js'
import type { AssignResult, PhoneNumberStore, RemoveResult } from '../../src/domain/store.js'
import {
  AssignmentNotFoundError,
  ConcurrentUpdateError,
  MalformedUserDocumentError,
  OrganizationNotFoundError,
  PhoneNumberLimitError,
  UserNotInOrganizationError
} from './errors.js'

export interface PhoneNumberRoutesOptions {
  store: PhoneNumberStore
  bodyLimit: number
}

function toResponseAssignment (entry: StoredAssignment, userId: string): PhoneNumberAssignment {
  return {
    userId,
    provider: entry.provider,
    phoneNumber: entry.phoneNumber,
    isDefault: entry.isDefault,
    isInboundEnabled: entry.isInboundEnabled,
    ...(entry.label === undefined ? {} : { label: entry.label }),
    createdAt: entry.createdAt.toISOString(),
    updatedAt: entry.updatedAt.toISOString()
  }
}

function failureOf (result: Exclude<AssignResult | RemoveResult, { status: 'assigned' | 'removed' }>, provider: string, phoneNumber: string): Error {
  switch (result.status) {
    case 'organization-not-found': return new OrganizationNotFoundError()
    case 'user-not-found': return new UserNotInOrganizationError()
    case 'assignment-not-found': return new AssignmentNotFoundError(provider, phoneNumber)
    case 'conflict': return new ConcurrentUpdateError()
    case 'limit-reached': return new PhoneNumberLimitError(result.limit)
    case 'malformed-field': return new MalformedUserDocumentError(result.field)
  }
}

const phoneNumberRoutes: FastifyPluginAsyncTypebox<PhoneNumberRoutesOptions> = async (fastify, { store, bodyLimit }) => {
  fastify.route({
    ...PostOrganizationsPhoneNumbers,
    bodyLimit,
    handler: async (request) => {
      const { targetUserId, provider, phoneNumber, isDefault, isInboundEnabled, label } = request.body
      // Only the assignment's own fields go further: unknown body fields are never stored.
      const result = await store.assign(
        new ObjectId(request.params.organizationId),
        new ObjectId(targetUserId),
        { provider, phoneNumber, isDefault, isInboundEnabled, label }
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
        { provider, phoneNumber }
      )
      if (result.status !== 'removed') throw failureOf(result, provider, phoneNumber)
      return { success: true, message: `${provider} phone number removed` } as const
    }
  })

  fastify.route({
    ...GetOrganizationsPhoneNumbers,
    handler: async (request) => {
      const { targetUserId, provider } = request.query
      const result = await store.list(new ObjectId(request.params.organizationId), {
        userId: targetUserId === undefined ? undefined : new ObjectId(targetUserId),
        provider
      })
      if (result.status !== 'listed') throw new OrganizationNotFoundError()
      return { phoneNumbers: result.assignments.map((entry) => toResponseAssignment(entry, entry.userId.toHexString())) }
    }
  })
}

export default phoneNumberRoutes
