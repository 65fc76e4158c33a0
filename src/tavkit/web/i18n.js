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
    rejoin: "Rejoin",
    // End screens (screens.js): {kind}Title says what happened, {kind}Hint what to do;
    // {kind}HintPhone, where present, is the touch-screen wording.
    hungUpTitle: "You left the call",
    hungUpHint: "If you left by mistake, rejoin.",
    peerHungUpTitle: "The other party hung up",
    peerHungUpHint: "The call has ended.",
    replacedTitle: "You joined this call somewhere else",
    replacedHint: "The call goes on in your other tab or device. Rejoin to bring it back here.",
    removedTitle: "You were removed from the call",
    removedHint: "The host removed you. Ask the host before joining again.",
    expiredSigTitle: "Your sign-in for this call has expired",
    expiredSigHint: "Sign in again or reload the page to get a new pass, then join again.",
    wrongSigTitle: "Your sign-in for this call was not accepted",
    wrongSigHint:
      "The pass the app gave for this call is wrong or belongs to someone else. Reload the " +
      "page or sign in again; if it keeps happening, contact the app's support.",
    closedTitle: "The call was closed",
    closedHint: "The host ended this call for everyone.",
    lostTitle: "The connection was lost and the call could not be resumed",
    lostHint: "Check your Wi-Fi or network cable, then rejoin.",
    lostHintPhone: "Check your Wi-Fi or mobile data, then rejoin.",
    roomFullTitle: "This call is full",
    roomFullHint: "Every place in the call is taken. Try again when someone leaves.",
    networkTitle: "Could not reach the call",
    networkHint: "Check your internet connection, then try again.",
    cameraDeniedHint:
      "The call needs your camera and microphone. Click the camera icon in the address " +
      "bar (or open the site settings), choose “Allow” for both, then try again.",
    cameraDeniedHintPhone:
      "The call needs your camera and microphone. Open this site's settings in your " +
      "browser (the icon or menu next to the address), allow both, then tap Try again.",
    micDeniedHint:
      "The call needs your microphone. Click the camera or microphone icon in the address " +
      "bar (or open the site settings), choose “Allow”, then try again.",
    micDeniedHintPhone:
      "The call needs your microphone. Open this site's settings in your browser (the icon " +
      "or menu next to the address), allow the microphone, then tap Try again.",
    deviceBusyTitle: "Your {device} is in use",
    deviceBusyHint: "Another app or browser tab is using it. Close that, then try again.",
    deviceBusyHintPhone: "Another app is using it. Close that app, then tap Try again.",
    deviceMissingTitle: "No {device} found",
    deviceMissingHint: "Connect a {device} or check that it is switched on, then try again.",
    deviceMissingHintPhone: "Check in your phone's settings that the browser may use the {device}, then tap Try again.",
    insecureTitle: "This page cannot use your camera",
    insecureHint:
      "Browsers give the camera and microphone only to secure (https) pages. Ask the " +
      "site's owner to serve this page over https.",
    noPermissionTitle: "You may not join this call",
    noPermissionHint: "Your pass does not allow joining this call. Ask the host or the app's support.",
    badOptionsTitle: "The call could not start",
    badOptionsHint:
      "The page gave incomplete details for this call. Reload the page; if it keeps " +
      "happening, contact the app's support.",
    failedTitle: "Could not join the call",
    failedHint: "Something went wrong on the way in. Try again in a moment.",
    deviceCamera: "camera",
    deviceMicrophone: "microphone",
    peerLeft: "{name} left the call",
    deviceNotice: "Your {device} could not be opened; the call goes on without it",
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
    // A tile's connection bars (quality.js): the grade, then why.
    quality_good: "Good connection",
    quality_fair: "Unstable connection",
    quality_poor: "Poor connection",
    qualityLoss: "{pct} % of packets lost",
    qualityDelay: "{ms} ms delay",
    qualityBandwidth: "low bandwidth ({kbps} kbps)",
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
    rejoin: "重新加入",
    hungUpTitle: "你已离开通话",
    hungUpHint: "如果是误操作，可以重新加入。",
    peerHungUpTitle: "对方已挂断",
    peerHungUpHint: "通话已结束。",
    replacedTitle: "你已在其他地方加入此通话",
    replacedHint: "通话在你的另一个标签页或设备上继续。点击“重新加入”可回到这里。",
    removedTitle: "你已被移出通话",
    removedHint: "主持人将你移出了通话。如需再次加入，请先联系主持人。",
    expiredSigTitle: "你的通话凭证已过期",
    expiredSigHint: "请重新登录或刷新页面以获取新的凭证，然后再次加入。",
    wrongSigTitle: "你的通话凭证未被接受",
    wrongSigHint: "应用为此通话提供的凭证不正确或属于其他用户。请刷新页面或重新登录；如果问题持续，请联系应用客服。",
    closedTitle: "通话已关闭",
    closedHint: "主持人已为所有人结束了此通话。",
    lostTitle: "网络连接已断开，无法恢复通话",
    lostHint: "请检查 Wi-Fi 或网线，然后重新加入。",
    lostHintPhone: "请检查 Wi-Fi 或移动数据，然后重新加入。",
    roomFullTitle: "通话人数已满",
    roomFullHint: "通话名额已满。请等有人离开后重试。",
    networkTitle: "无法连接到通话",
    networkHint: "请检查网络连接，然后重试。",
    cameraDeniedHint:
      "通话需要使用摄像头和麦克风。请点击地址栏中的摄像头图标（或打开网站设置），" +
      "将两者都设为“允许”，然后重试。",
    cameraDeniedHintPhone:
      "通话需要使用摄像头和麦克风。请在浏览器中打开本网站的设置（地址旁的图标或菜单），" +
      "允许两者，然后点击“重试”。",
    micDeniedHint: "通话需要使用麦克风。请点击地址栏中的摄像头或麦克风图标（或打开网站设置），设为“允许”，然后重试。",
    micDeniedHintPhone: "通话需要使用麦克风。请在浏览器中打开本网站的设置（地址旁的图标或菜单），允许麦克风，然后点击“重试”。",
    deviceBusyTitle: "{device}正被占用",
    deviceBusyHint: "另一个应用或浏览器标签页正在使用它。请关闭后重试。",
    deviceBusyHintPhone: "另一个应用正在使用它。请关闭该应用后点击“重试”。",
    deviceMissingTitle: "未找到{device}",
    deviceMissingHint: "请连接{device}或确认它已开启，然后重试。",
    deviceMissingHintPhone: "请在手机设置中确认浏览器可以使用{device}，然后点击“重试”。",
    insecureTitle: "此页面无法使用摄像头",
    insecureHint: "浏览器只允许安全（https）页面使用摄像头和麦克风。请联系网站管理员改用 https。",
    noPermissionTitle: "你没有加入此通话的权限",
    noPermissionHint: "你的凭证不允许加入此通话。请联系主持人或应用客服。",
    badOptionsTitle: "通话无法开始",
    badOptionsHint: "页面提供的通话信息不完整。请刷新页面；如果问题持续，请联系应用客服。",
    failedTitle: "无法加入通话",
    failedHint: "加入通话时出错。请稍后重试。",
    deviceCamera: "摄像头",
    deviceMicrophone: "麦克风",
    peerLeft: "{name} 已离开通话",
    deviceNotice: "无法打开{device}，通话将继续进行",
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
    quality_good: "网络良好",
    quality_fair: "网络不稳定",
    quality_poor: "网络较差",
    qualityLoss: "丢包 {pct}%",
    qualityDelay: "延迟 {ms} 毫秒",
    qualityBandwidth: "带宽不足（{kbps} kbps）",
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
  const t = (key, vars = {}) => {
    const text = table[key] ?? STRINGS.en[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
  };
  /** Whether `key` has a string (in `lang` or English), for optional variants. */
  t.has = (key) => key in table || key in STRINGS.en;
  return t;
}
