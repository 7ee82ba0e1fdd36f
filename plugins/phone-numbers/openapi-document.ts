/**
 * Serves the contract exactly as written: /openapi.yaml is the file's text,
 * /openapi.json the same document as JSON. Both bodies are built once.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { openapiDocument, openapiYaml } from '../../schemas/generated/openapi-document.js'
import { GetOpenapiJson, GetOpenapiYaml } from '../../schemas/generated/typebox.js'

const openapiJson = JSON.stringify(openapiDocument)
const asIs = (payload: unknown): string => payload as string

const openapiDocumentRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.route({
    ...GetOpenapiJson,
    // Serialized once at startup; the route's serializer passes it through.
    // The cast only tells the type provider what the string stands for.
    handler: async (_request, reply) => reply.type('application/json; charset=utf-8').serializer(asIs).send(openapiJson as unknown as typeof openapiDocument)
  })
  fastify.route({
    ...GetOpenapiYaml,
    handler: async (_request, reply) => reply.type('application/yaml; charset=utf-8').serializer(asIs).send(openapiYaml)
  })
}

export default openapiDocumentRoutes
