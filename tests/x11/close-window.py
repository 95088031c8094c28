#!/usr/bin/env python3
"""Closes an X11 window as a window manager does when its close button is clicked:
a WM_DELETE_WINDOW client message to the window, which then closes itself (GTK
turns it into the app's close request). No window manager runs under the tests'
Xvfb, and xdotool's close destroys the window instead. Python's ctypes and
libX11 (the GUI stack's own); DISPLAY says which server.

    close-window.py TITLE      closes every viewable top-level window of that title
Exits 0 when at least one was asked to close, 1 when none was found."""

import ctypes
import ctypes.util
import sys

CLIENT_MESSAGE = 33
IS_VIEWABLE = 2


class XClientMessageEvent(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong),
                ("send_event", ctypes.c_int), ("display", ctypes.c_void_p),
                ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]


class XEvent(ctypes.Union):
    _fields_ = [("xclient", XClientMessageEvent), ("pad", ctypes.c_long * 24)]


class XWindowAttributes(ctypes.Structure):
    # Only map_state is read; the rest pads the struct to its size in Xlib.h.
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("width", ctypes.c_int),
                ("height", ctypes.c_int), ("border_width", ctypes.c_int),
                ("depth", ctypes.c_int), ("visual", ctypes.c_void_p),
                ("root", ctypes.c_ulong), ("class", ctypes.c_int),
                ("bit_gravity", ctypes.c_int), ("win_gravity", ctypes.c_int),
                ("backing_store", ctypes.c_int), ("backing_planes", ctypes.c_ulong),
                ("backing_pixel", ctypes.c_ulong), ("save_under", ctypes.c_int),
                ("colormap", ctypes.c_ulong), ("map_installed", ctypes.c_int),
                ("map_state", ctypes.c_int), ("all_event_masks", ctypes.c_long),
                ("your_event_mask", ctypes.c_long),
                ("do_not_propagate_mask", ctypes.c_long),
                ("override_redirect", ctypes.c_int), ("screen", ctypes.c_void_p)]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    title = sys.argv[1].encode()
    x = ctypes.cdll.LoadLibrary(ctypes.util.find_library("X11") or "libX11.so.6")
    x.XOpenDisplay.restype = ctypes.c_void_p
    x.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x.XDefaultRootWindow.restype = ctypes.c_ulong
    x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x.XInternAtom.restype = ctypes.c_ulong
    x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x.XQueryTree.argtypes = [ctypes.c_void_p, ctypes.c_ulong] + [ctypes.c_void_p] * 4
    x.XFetchName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p]
    x.XGetWindowAttributes.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p]
    x.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long,
                             ctypes.c_void_p]
    x.XFlush.argtypes = [ctypes.c_void_p]
    x.XFree.argtypes = [ctypes.c_void_p]
    x.XCloseDisplay.argtypes = [ctypes.c_void_p]

    dpy = x.XOpenDisplay(None)
    if not dpy:
        print("close-window: cannot open the display", file=sys.stderr)
        return 2
    root = x.XDefaultRootWindow(dpy)
    children = ctypes.POINTER(ctypes.c_ulong)()
    count = ctypes.c_uint()
    ignored = ctypes.c_ulong()
    x.XQueryTree(dpy, root, ctypes.byref(ignored), ctypes.byref(ignored),
                 ctypes.byref(children), ctypes.byref(count))
    protocols = x.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
    delete = x.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
    asked = 0
    for i in range(count.value):
        window = children[i]
        name = ctypes.c_char_p()
        attrs = XWindowAttributes()
        if not x.XFetchName(dpy, window, ctypes.byref(name)):
            continue
        same = name.value == title
        x.XFree(name)
        if not same or not x.XGetWindowAttributes(dpy, window, ctypes.byref(attrs)):
            continue
        if attrs.map_state != IS_VIEWABLE:
            continue
        event = XEvent()
        event.xclient.type = CLIENT_MESSAGE
        event.xclient.window = window
        event.xclient.message_type = protocols
        event.xclient.format = 32
        event.xclient.data[0] = delete
        event.xclient.data[1] = 0  # CurrentTime
        x.XSendEvent(dpy, window, 0, 0, ctypes.byref(event))
        asked += 1
    if children:
        x.XFree(children)
    x.XFlush(dpy)
    x.XCloseDisplay(dpy)
    return 0 if asked else 1


if __name__ == "__main__":
    sys.exit(main())
