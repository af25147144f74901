export { Admission, refusalReason, type AdmissionOptions, type Door, type Refusal, type Admitted, type JoinRefusal } from './admission.js'
export { createRoomAccess, type RoomAccess, type RoomAccessOptions } from './access.js'
export { createOriginPolicy, isOriginEntry, serialiseOrigin, type OriginPolicy, type RequestOrigin } from './origin.js'
export { extractToken } from './token.js'
