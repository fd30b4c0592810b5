#!/usr/bin/env python3
"""Test helper for the desktop tests, speaking D-Bus on the session bus.

  dbus_tool.py names                 the bus names owned now, one per line
  dbus_tool.py menu NAME             the tray's dbusmenu layout as JSON: [{id, label, enabled, toggle, checked}]
  dbus_tool.py click NAME ID [--may-exit]
                                     sends a "clicked" event to menu item ID (--may-exit: the
                                     tray may exit before it answers, as after "Quit")
  dbus_tool.py item NAME             the StatusNotifierItem's properties (Title, ToolTip, IconPixmap sizes) as JSON
  dbus_tool.py notifyd LOG           a stand-in org.freedesktop.Notifications server that appends
                                     each Notify call to LOG as one JSON line, and prints "ready"
"""
import json
import sys

import dbus


def bus():
    return dbus.SessionBus()


def unwrap(v):
    if isinstance(v, (dbus.String, dbus.ObjectPath)):
        return str(v)
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (dbus.Int32, dbus.UInt32, dbus.Int64, dbus.UInt64, dbus.Byte, dbus.Int16, dbus.UInt16)):
        return int(v)
    if isinstance(v, (dbus.Array, list)):
        return [unwrap(x) for x in v]
    if isinstance(v, (dbus.Struct, tuple)):
        return [unwrap(x) for x in v]
    if isinstance(v, dbus.Dictionary):
        return {str(k): unwrap(x) for k, x in v.items()}
    return v


def menu(name):
    obj = bus().get_object(name, "/MenuBar")
    _rev, layout = obj.GetLayout(0, -1, dbus.Array([], signature="s"), dbus_interface="com.canonical.dbusmenu")
    items = []

    def walk(node):
        item_id, props, children = node
        props = unwrap(props)
        if item_id != 0 and props.get("type") != "separator":
            items.append({
                "id": int(item_id),
                "label": props.get("label", "").replace("_", "", 0),
                "enabled": props.get("enabled", True),
                "toggle": props.get("toggle-type", ""),
                "checked": props.get("toggle-state", 0) == 1,
            })
        for c in children:
            walk(c)

    walk(layout)
    print(json.dumps(items))


def click(name, item_id, may_exit=False):
    obj = bus().get_object(name, "/MenuBar")
    try:
        obj.Event(dbus.Int32(int(item_id)), "clicked", dbus.Int32(0, variant_level=1), dbus.UInt32(0),
                  dbus_interface="com.canonical.dbusmenu")
    except dbus.exceptions.DBusException as e:
        # "Quit" may end the process before its reply goes out.
        if not (may_exit and e.get_dbus_name() == "org.freedesktop.DBus.Error.NoReply"):
            raise
    print("clicked")


def item(name):
    obj = bus().get_object(name, "/StatusNotifierItem")
    props = obj.GetAll("org.kde.StatusNotifierItem", dbus_interface="org.freedesktop.DBus.Properties")
    tip = unwrap(props.get("ToolTip", ["", [], "", ""]))
    pixmaps = unwrap(props.get("IconPixmap", []))
    print(json.dumps({
        "title": str(props.get("Title", "")),
        "tooltip": tip[3] if len(tip) > 3 else "",
        "icon_sizes": [[p[0], p[1]] for p in pixmaps],
        "icon_bytes": [len(p[2]) for p in pixmaps],
    }))


def notifyd(log):
    import dbus.service
    from dbus.mainloop.glib import DBusGMainLoop
    from gi.repository import GLib

    DBusGMainLoop(set_as_default=True)
    session = dbus.SessionBus()

    class Server(dbus.service.Object):
        def __init__(self):
            self.next_id = 0
            name = dbus.service.BusName("org.freedesktop.Notifications", session, do_not_queue=True)
            super().__init__(name, "/org/freedesktop/Notifications")

        @dbus.service.method("org.freedesktop.Notifications", in_signature="susssasa{sv}i", out_signature="u")
        def Notify(self, app, replaces, icon, summary, body, actions, hints, timeout):
            self.next_id += 1
            with open(log, "a") as f:
                f.write(json.dumps({"id": self.next_id, "app": str(app), "summary": str(summary), "body": str(body),
                                    "actions": [str(a) for a in actions], "icon": str(icon),
                                    "urgency": int(hints.get("urgency", 1))}) + "\n")
            return self.next_id

        @dbus.service.method("org.freedesktop.Notifications", in_signature="", out_signature="as")
        def GetCapabilities(self):
            return ["body", "actions"]

        @dbus.service.method("org.freedesktop.Notifications", in_signature="u", out_signature="")
        def CloseNotification(self, nid):
            pass

        @dbus.service.method("org.freedesktop.Notifications", in_signature="", out_signature="ssss")
        def GetServerInformation(self):
            return ("stand-in", "callhome-tests", "1", "1.2")

    Server()
    print("ready", flush=True)
    GLib.MainLoop().run()


def main():
    cmd = sys.argv[1]
    if cmd == "names":
        print("\n".join(str(n) for n in bus().list_names()))
    elif cmd == "menu":
        menu(sys.argv[2])
    elif cmd == "click":
        click(sys.argv[2], sys.argv[3], may_exit="--may-exit" in sys.argv[4:])
    elif cmd == "item":
        item(sys.argv[2])
    elif cmd == "notifyd":
        notifyd(sys.argv[2])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
