// The component's words in English and Chinese.
//
// The language is the element's `lang` attribute when set, else the browser's
// (navigator.language); anything starting with "zh" is Chinese, the rest English.

const STRINGS = {
  en: {
    you: "You",
    room: "Room {room}",
    participants: "{n} in call",
    entering: "Joining the room…",
    connecting: "Connecting…",
    waiting: "Waiting for others to join…",
    reconnecting: "Connection lost, reconnecting…",
    ended: "Call ended",
    endedLost: "The connection was lost and the call could not be resumed",
    endedReplaced: "You joined this call somewhere else",
    endedRemoved: "You were removed from the call",
    endedExpired: "Your sign-in for this call expired",
    endedClosed: "The call was closed",
    rejoin: "Rejoin",
    idle: "Not in a call",
    tileConnecting: "Connecting…",
    tileReconnecting: "Reconnecting…",
    tileLost: "Connection lost",
    mute: "Mute",
    muteAria: "Mute",
    unmute: "Unmute",
    unmuteAria: "Unmute",
    camera: "Stop video",
    cameraAria: "Stop video",
    startVideo: "Start video",
    startVideoAria: "Start video",
    switchCamera: "Switch",
    switchCameraAria: "Switch camera",
    hangup: "End",
    hangupAria: "End call",
    micOff: "Microphone off",
    camOff: "Camera off",
    enableSound: "Tap to turn on sound",
    confirmTitle: "End the call?",
    confirmBody: "You will leave the room. Others can stay in the call.",
    confirmOk: "Hang up",
    cancel: "Cancel",
    close: "Close",
    retry: "Try again",
    cameraDeniedTitle: "Camera access is blocked",
    micDeniedTitle: "Microphone access is blocked",
    deniedBody:
      "The call needs your camera and microphone. Click the camera icon in the address " +
      "bar (or open the site settings), choose “Allow” for both, then try again.",
    errorTitle: "Something went wrong",
    controls: "Call controls",
    chat: "Chat",
    chatAria: "Chat",
    chatTitle: "Chat",
    chatClose: "Close chat",
    chatUnread: "{n} unread",
    chatEmpty: "No messages yet",
    chatPlaceholder: "Send a message…",
    chatSend: "Send",
    chatFailed: "Not sent: {reason}",
  },
  zh: {
    you: "我",
    room: "房间 {room}",
    participants: "{n} 人通话中",
    entering: "正在进入房间…",
    connecting: "正在连接…",
    waiting: "等待其他人加入…",
    reconnecting: "连接中断，正在重连…",
    ended: "通话已结束",
    endedLost: "网络连接已断开，无法恢复通话",
    endedReplaced: "你已在其他地方加入此通话",
    endedRemoved: "你已被移出通话",
    endedExpired: "你的通话凭证已过期",
    endedClosed: "通话已关闭",
    rejoin: "重新加入",
    idle: "未在通话中",
    tileConnecting: "连接中…",
    tileReconnecting: "重连中…",
    tileLost: "连接已断开",
    mute: "静音",
    muteAria: "静音",
    unmute: "取消静音",
    unmuteAria: "取消静音",
    camera: "关闭视频",
    cameraAria: "关闭视频",
    startVideo: "开启视频",
    startVideoAria: "开启视频",
    switchCamera: "翻转",
    switchCameraAria: "翻转摄像头",
    hangup: "挂断",
    hangupAria: "挂断",
    micOff: "麦克风已关闭",
    camOff: "摄像头已关闭",
    enableSound: "点击开启声音",
    confirmTitle: "结束通话？",
    confirmBody: "你将离开房间，其他人可以继续通话。",
    confirmOk: "挂断",
    cancel: "取消",
    close: "关闭",
    retry: "重试",
    cameraDeniedTitle: "无法使用摄像头",
    micDeniedTitle: "无法使用麦克风",
    deniedBody:
      "通话需要使用摄像头和麦克风。请点击地址栏中的摄像头图标（或打开网站设置），" +
      "将两者都设为“允许”，然后重试。",
    errorTitle: "出错了",
    controls: "通话控制",
    chat: "聊天",
    chatAria: "聊天",
    chatTitle: "聊天",
    chatClose: "关闭聊天",
    chatUnread: "{n} 条未读",
    chatEmpty: "还没有消息",
    chatPlaceholder: "发送消息…",
    chatSend: "发送",
    chatFailed: "发送失败：{reason}",
  },
};

/** "zh" or "en" for a BCP 47 tag; empty or unknown tags fall back to the browser's. */
export function pickLang(tag, fallback = globalThis.navigator?.language || "en") {
  const value = (tag || fallback || "en").toLowerCase();
  return value.startsWith("zh") ? "zh" : "en";
}

/** A translator for `lang`: t("room", {room: 12}) → "Room 12". */
export function translator(lang) {
  const table = STRINGS[lang] || STRINGS.en;
  return (key, vars = {}) => {
    const text = table[key] ?? STRINGS.en[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
  };
}
