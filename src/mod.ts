/** sluice's public surface for embedding the service. The client lives in `sluice/client`. */
export { SluiceService, type SluiceServiceOptions, SLUICE_VERSION } from "./service/SluiceService.js";
export { Admissions, type AdmissionsOptions } from "./admission/Admissions.js";
export { ScopeRegistry } from "./registry/ScopeRegistry.js";
export { type Clock, ManualClock, systemClock } from "./clock.js";
export { loadConfig, type SluiceConfig, ConfigError } from "./config.js";
export { parsePolicy, policySchema } from "./protocol/policySchema.js";
export { admitRequestSchema, reportSchema, type AdmitRequest, type Report } from "./protocol/schemas.js";
export type { Decision, DecisionEvent, ReportAck } from "./protocol/decision.js";
export { encodeSubjectToken, decodeSubjectToken } from "./protocol/subjectToken.js";
export { SluiceRequestError, isSluiceRequestError, type ErrorCode } from "./protocol/errors.js";
export type { PolicyDocument, ScopePolicy } from "../machines/policy.js";
export { startHttpServer, type SluiceHttpServer, type HttpServerOptions } from "./http/httpServer.js";
export { SluiceMetrics } from "./http/metrics.js";
export { createNatsInspector, type NatsInspector } from "./inspection/natsInspector.js";
export { startWebSocketInspection, InspectPortInUseError } from "./inspection/wsInspector.js";
export { Passivator, DEFAULT_PASSIVATION } from "./registry/Passivator.js";
