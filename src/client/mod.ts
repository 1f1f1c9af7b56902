/**
 * `sluice/client`: the client of sluice's NATS protocol.
 *
 * - {@link SluiceClient}: admit (auto-batched), report, inspect, admin, the
 *   decision feed, and `guard()` around an upstream call.
 * - {@link SluiceClientError} and {@link isSluiceClientError}: every failure.
 * - The protocol's types and the subject-token encoding.
 */
export { SluiceClient, type Outcome, type PolicyAdmin, type ReportExtra } from "./SluiceClient.js";
export { DEFAULT_CLIENT_OPTIONS, type SluiceClientOptions } from "./options.js";
export {
  CLIENT_ERROR_STATUS,
  SluiceClientError,
  isSluiceClientError,
  type SluiceClientErrorCode,
  type SluiceClientErrorOptions,
} from "./SluiceClientError.js";
export {
  DEFAULT_GUARD_OPTIONS,
  type AdmitDecision,
  type GuardContext,
  type GuardOptions,
  type GuardReturn,
  type GuardedFn,
} from "./guard.js";
export { DecisionFeed, decisionSubject, type DecisionFilter } from "./DecisionFeed.js";
export { upstreamRateLimit, type UpstreamRateLimit } from "./upstreamRateLimit.js";
export type { ResetWhat, ScopeInspection, ScopeList, ScopeView } from "./replies.js";
export { encodeSubjectToken, decodeSubjectToken } from "../protocol/subjectToken.js";
export type { Decision, DecisionEvent, ReportAck, LimitInfo, Reason } from "../protocol/decision.js";
export {
  MAX_BATCH,
  OUTCOMES,
  admitRequestSchema,
  reportSchema,
  type AdmitRequest,
  type AdmitRequestInput,
  type Report,
  type ReportInput,
} from "../protocol/schemas.js";
export type { ErrorCode, ErrorReply } from "../protocol/errors.js";
export type { PolicyDocument, ScopePolicy } from "../../machines/policy.js";
export type { Clock } from "../clock.js";
