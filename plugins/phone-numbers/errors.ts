/**
 * Errors the phone-number routes answer with. Stable codes (prefix
 * ORG_PHONE_) and status codes live here; the error handler turns any of them
 * into the contract's `{ error, details }` body, `error` being the short title
 * below and `details` the message.
 */
import createError from '@fastify/error'

// Rejections are expected traffic, not faults: no stack trace is captured for
// them (it was the largest single cost of a 401 in the benchmark's profile).
export const UnauthorizedError = createError('ORG_PHONE_UNAUTHORIZED', '%s', 401, Error, false)
export const ForbiddenError = createError('ORG_PHONE_FORBIDDEN', 'This operation requires the SUPERADMIN role', 403, Error, false)
export const ValidationError = createError('ORG_PHONE_VALIDATION', '%s', 400, Error, false)
export const UnsupportedEncodingError = createError('ORG_PHONE_UNSUPPORTED_ENCODING', 'Content-Encoding %s is not supported; send the JSON body uncompressed', 415, Error, false)
export const UnsupportedCharsetError = createError('ORG_PHONE_UNSUPPORTED_CHARSET', 'JSON bodies must be UTF-8, got charset %s', 415, Error, false)
export const OrganizationNotFoundError = createError('ORG_PHONE_ORGANIZATION_NOT_FOUND', 'No organization exists with the provided id', 404)
export const UserNotInOrganizationError = createError('ORG_PHONE_USER_NOT_IN_ORGANIZATION', 'The target user does not exist or does not belong to this organization', 404)
export const AssignmentNotFoundError = createError('ORG_PHONE_ASSIGNMENT_NOT_FOUND', 'The target user holds no %s number %s', 404)
export const PhoneNumberLimitError = createError('ORG_PHONE_LIMIT_REACHED', 'The user already holds %d or more numbers, the most allowed per user; remove one before assigning another', 409)
export const MalformedUserDocumentError = createError('ORG_PHONE_MALFORMED_USER_DOCUMENT', "The user's %s field is not an array, so it was left as it is and nothing was written; fix the user document", 409)
export const SourceUserNotInOrganizationError = createError('ORG_PHONE_SOURCE_USER_NOT_IN_ORGANIZATION', 'The source user (fromUserId) does not exist or does not belong to this organization', 404)
export const OtherOrganizationError = createError('ORG_PHONE_OTHER_ORGANIZATION', '%s', 409)
export const InboundRouteHeldError = createError('ORG_PHONE_INBOUND_ROUTE_HELD', '%s', 409)
export const AlreadyHeldError = createError('ORG_PHONE_ALREADY_HELD', 'The target user already holds the %s number %s; remove it from one of the two users first', 409)
export const NoInboundRouteError = createError('ORG_PHONE_NO_INBOUND_ROUTE', 'No assignment routes inbound calls for %s', 404)
export const AmbiguousInboundRouteError = createError('ORG_PHONE_AMBIGUOUS_INBOUND_ROUTE', '%s', 409)
export const RouteLookupForbiddenError = createError('ORG_PHONE_FORBIDDEN', 'This caller may not look up inbound routes', 403, Error, false)
export const NumberBusyError = createError('ORG_PHONE_NUMBER_BUSY', 'Another server process changed %s within the last %d s; a transfer needs the number to itself, retry after that', 409)
export const ConcurrentUpdateError = createError('ORG_PHONE_CONCURRENT_UPDATE', "The user's phone numbers kept changing concurrently; nothing was written, retry the request", 409)
export const IdempotencyKeyInUseError = createError('ORG_PHONE_IDEMPOTENCY_KEY_IN_USE', 'A request with this Idempotency-Key is still running; retry after %d s to get its answer', 409, Error, false)
export const IdempotencyKeyReusedError = createError('ORG_PHONE_IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was used with another request body; send a new key for a new request', 422, Error, false)

/** Short titles for the `error` field, by status code. */
export const ERROR_TITLES: Readonly<Record<number, string>> = {
  400: 'Validation error',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Conflict',
  413: 'Payload too large',
  415: 'Unsupported media type',
  422: 'Unprocessable entity',
  500: 'Internal server error',
  503: 'Service unavailable'
}

/** Titles for the `error` field of errors whose code says more than their status. */
export const CODE_TITLES: Readonly<Record<string, string>> = {
  ORG_PHONE_LIMIT_REACHED: 'Phone number limit reached',
  ORG_PHONE_MALFORMED_USER_DOCUMENT: 'Malformed user document',
  ORG_PHONE_ORGANIZATION_NOT_FOUND: 'Organization not found',
  ORG_PHONE_USER_NOT_IN_ORGANIZATION: 'Target user not found in organization',
  ORG_PHONE_ASSIGNMENT_NOT_FOUND: 'Phone number not found',
  ORG_PHONE_SOURCE_USER_NOT_IN_ORGANIZATION: 'Source user not found in organization',
  ORG_PHONE_OTHER_ORGANIZATION: 'Phone number belongs to another organization',
  ORG_PHONE_INBOUND_ROUTE_HELD: 'Inbound route held by another assignment',
  ORG_PHONE_ALREADY_HELD: 'Target user already holds this phone number',
  ORG_PHONE_NO_INBOUND_ROUTE: 'No inbound route',
  ORG_PHONE_AMBIGUOUS_INBOUND_ROUTE: 'Ambiguous inbound route',
  ORG_PHONE_IDEMPOTENCY_KEY_IN_USE: 'Idempotency key in use',
  ORG_PHONE_IDEMPOTENCY_KEY_REUSED: 'Idempotency key reused'
}

/** @deprecated The not-found titles are part of CODE_TITLES. */
export const NOT_FOUND_TITLES = CODE_TITLES
