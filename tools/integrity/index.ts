/**
 * `fastify-org-phone-numbers/integrity`: the operator's check of stored data
 * against the ownership and routing rules (the 409 Ambiguous inbound route
 * answer points here). `npm run check-integrity` is its command line.
 */
export { checkIntegrity, entryProblem } from './integrity.js'
export type { IntegrityOptions, HolderReport, NumberViolation, MalformedEntry, MalformedField, StaleReason, StaleClaim, RepairReport, IntegrityReport } from './report.js'
