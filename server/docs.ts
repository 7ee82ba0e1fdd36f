/**
 * The API reference page: Swagger UI at /docs, rendered from schemas/openapi.yaml
 * (@fastify/swagger in static mode) with every asset served from the npm package,
 * so it works offline and behind firewalls. `/` redirects to it.
 */
import swagger, { type StaticDocumentSpec } from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyPluginAsync } from 'fastify'
import { openapiDocument } from '../schemas/generated/openapi-document.js'

export const DOCS_PATH = '/docs'

/**
 * The contract as the page shows it: the same document, with this server listed
 * first (a relative URL), so "Try it out" calls the origin the page came from
 * whatever its host and port (the contract's own server is localhost:2212, a
 * different origin from 127.0.0.1 and any other port).
 */
export function documentForPage (): Record<string, unknown> {
  const servers = Array.isArray(openapiDocument['servers']) ? openapiDocument['servers'] as unknown[] : []
  return { ...openapiDocument, servers: [{ url: '/', description: 'This server (the one serving this page)' }, ...servers] }
}

// Encapsulated on purpose (no fastify-plugin): the `swagger` decorator and the
// page's routes stay in this context. Static mode adds no onRoute hook, so the
// API's routes and their schemas are untouched.
const docs: FastifyPluginAsync = async (fastify) => {
  const pageDocument = documentForPage()
  await fastify.register(swagger, {
    mode: 'static',
    specification: { document: openapiDocument as unknown as StaticDocumentSpec['document'] }
  })
  await fastify.register(swaggerUi, {
    routePrefix: DOCS_PATH,
    // Swagger UI would otherwise ask validator.swagger.io for a badge.
    validatorUrl: false,
    uiConfig: { docExpansion: 'list', deepLinking: true },
    theme: { title: 'Organization phone numbers API' },
    transformSpecificationClone: false,
    transformSpecification: () => pageDocument
  })
  fastify.get('/', { schema: { hide: true } }, async (_request, reply) => reply.redirect(DOCS_PATH))
}

export default docs

/** Where to browse to the page; a wildcard listen address is not one. */
export function docsUrl (host: string, port: number): string {
  const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host
  return `http://${shown}:${port}${DOCS_PATH}`
}
