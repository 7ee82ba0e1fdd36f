/**
 * Client entry point (`fastify-org-phone-numbers/schemas`): everything derived
 * from schemas/openapi.yaml. The files under ./generated/ are produced by
 * `npm run generate`.
 *
 * - TypeBox schemas and their static types (OrgAssignPhoneNumberRequest, ...),
 *   the Fastify route objects (PostOrganizationsPhoneNumbers, ...) and the
 *   record of all of them, exported here as `operationRoutes`;
 * - openapi-typescript's `paths`, `components`, `operations` types (for
 *   openapi-fetch's `createClient<paths>()`). This `operations` type shadows
 *   the TypeBox module's `operations` record, hence `operationRoutes`;
 * - the contract itself: `openapiYaml` (exact text) and `openapiDocument`.
 *
 * Importing it registers the TypeBox checks the schemas need (Value.Check,
 * TypeCompiler) and makes TypeBox's error for an enum name its allowed values
 * ("Expected one of 'twilio', 'sinch', 'textgrid'"); other messages are left
 * to the error function set before.
 */
export * from './generated/typebox.js'
export type { paths, components, operations, webhooks, $defs } from './generated/openapi-types.js'
export { openapiYaml, openapiDocument } from './generated/openapi-document.js'
