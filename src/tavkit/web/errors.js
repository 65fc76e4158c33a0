// The seed's error model on the browser side: four modules, their codes, one shape.
//
// Every failure reaches the page as a plain object {module, errorCode, errorMsg}
// (through onErrorListener and the `tavkit:error` event). Codes repeat across
// modules (10001 is a camera permission in "trtc" and a parse error in "server"),
// so the module is part of an error's identity. This table is a copy of part of
// src/tavkit/errors.py, kept identical by tests/web/test_pinned.py: only the messages
// the component itself produces are here, the server's errors travel as the server
// wrote them.

/** The seed's error modules (tavkit.errors.ErrorModule), in table order. */
export const MODULES = Object.freeze(["trtc", "server", "http", "avkit"]);

/** module → code → [English, Chinese] message: the codes the component reports. */
export const TABLE = {
  trtc: {
    [-1301]: ["Failed to open the camera", "打开摄像头失败"],
    [-1302]: ["Failed to open the microphone", "打开麦克风失败"],
    [-1307]: ["The media connection was lost", "推流连接断开"],
    [-1019]: ["Failed to enter the room, or left it", "进房失败或者退房成功"],
    10001: ["Please allow access to the camera first", "请先对摄像头进行授权"],
    10002: ["Please allow access to the microphone first", "请先对麦克风进行授权"],
    5000: ["The call was ended", "退出通话"],
  },
  server: {
    10000: ["Server error", "服务器错误"],
    10003: ["JSON deserialisation failed", "json反序列化失败"],
    10004: ["Invalid parameter", "参数无效"],
    10005: ["Unauthorised", "未授权"],
    14003: ["The room is closed", "房间已经关闭"],
    14004: ["The user has already left the room", "用户已经退出房间"],
  },
  http: {
    10000: ["Server or network error", "服务器或者网络错误"],
  },
  avkit: {
    10001: ["No permission to use the video component", "没有权限使用视频组件"],
    10002: ["The required parameter userId is missing", "缺少必要参数userId"],
    10003: ["The required parameter sdkAppId is missing", "缺少必要参数sdkAppId"],
    10004: ["The required parameter userSig is missing", "缺少必要参数userSig"],
    10005: ["The required parameter roomId is missing", "缺少必要参数roomId"],
    82: ["Parameter check failed", "参数检测失败"],
  },
};
for (const rows of Object.values(TABLE)) Object.freeze(rows);
Object.freeze(TABLE);

/** The table's message for (module, code) in `lang` ("en" or "zh"), or "" if unknown. */
export function tableMessage(module, code, lang = "en") {
  const row = TABLE[module]?.[code];
  if (!row) return "";
  return lang === "zh" ? row[1] : row[0];
}

/**
 * An error the component reports; `toJSON()` is the seed's wire shape.
 *
 * It is an Error (so it carries a stack and can be thrown through async code)
 * whose identity is (module, errorCode); `detail` is the specific reason, kept
 * apart from the table's message so a listener sees both when they differ.
 */
export class CallError extends Error {
  constructor(module, errorCode, errorMsg) {
    super(`[${module} ${errorCode}] ${errorMsg}`);
    this.name = "CallError";
    this.module = module;
    this.errorCode = errorCode;
    this.errorMsg = errorMsg;
  }

  /** The seed's shape, what listeners and events receive. */
  toJSON() {
    return { module: this.module, errorCode: this.errorCode, errorMsg: this.errorMsg };
  }
}

/**
 * Build a CallError from the table; `detail` (optional) says what exactly failed.
 *
 * The message is the table's text, followed by the detail when there is one, so a
 * user reading a log sees the category first.
 */
export function callError(module, code, lang = "en", detail = "") {
  const base = tableMessage(module, code, lang) || `${module} error ${code}`;
  return new CallError(module, code, detail ? `${base}: ${detail}` : base);
}

/** Accept a server's JSON error body; null if `body` is not the seed's shape. */
export function fromWire(body) {
  if (!body || typeof body !== "object") return null;
  const { module, errorCode, errorMsg } = body;
  if (!(module in TABLE) && !MODULES.includes(module)) return null;
  const code = typeof errorCode === "string" ? Number(errorCode) : errorCode;
  if (!Number.isInteger(code)) return null;
  return new CallError(module, code, typeof errorMsg === "string" ? errorMsg : "");
}

/** Map anything thrown into a CallError; unknown failures become `fallback`. */
export function asCallError(err, fallback) {
  if (err instanceof CallError) return err;
  return fallback;
}
