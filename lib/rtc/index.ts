export {
  SDP_TYPES, signalDataSchema, signalFrameSchema, PeerIdSchema, RtcJoinFrame, RtcLeaveFrame, RtcFrames,
  type SignalData, type SignalFrame
} from './signal.js'
export {
  turnPassword, turnCredentials, anonymousTurnUser, iceServersFor,
  type IceServerConfig, type IceServer, type TurnCredentials
} from './turn.js'
export {
  RtcRooms, controlRoomOf, type RtcRoomsOptions, type RtcRoomsLog, type RtcPeerHandle, type EnterResult, type SignalOutcome
} from './peers.js'
