export { textFrame, eventJson, wsEventEncoder, type WireFrame } from './frame.js'
export {
  ERROR_CODES, RefSchema, RoomSchema, EventNameSchema, opSchema, readEnvelope, describeIssues, ServerFrames,
  AuthFrame, JoinFrame, LeaveFrame, PublishFrame, PingFrame,
  type ErrorCode, type Ref, type Envelope
} from './protocol.js'
export { createRoomAccess, type RoomAccess, type RoomAccessOptions } from './access.js'
export {
  SocketConnection, type SocketConnectionOptions, type ConnectionLimits, type ConnectionLog, type OpHandler
} from './connection.js'
