package console

import (
	"bytes"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// view is what the layout of every page needs, and the page's own data.
type view struct {
	Title     string
	Session   *session
	Partition string
	// Nav names the section the page belongs to (streams, dead-letters, usage, tail).
	Nav  string
	Data any
}

// CSRF is the token every form of the page posts back.
func (v view) CSRF() string {
	if v.Session == nil {
		return ""
	}
	return v.Session.csrf
}

// Partitions are the other partitions the token names, for the switcher.
func (v view) Partitions() []string {
	if v.Session == nil {
		return nil
	}
	return v.Session.partitions()
}

// Base is the partition's path prefix.
func (v view) Base() string { return "/console/p/" + url.PathEscape(v.Partition) }

var funcs = template.FuncMap{
	"ago":   ago,
	"short": func(s string) string { return clipText(s, 12) },
	"clip":  func(s string, n int) string { return clipText(s, n) },
	"pe":    url.PathEscape,
	"qe":    url.QueryEscape,
	"join":  strings.Join,
	"list":  func(s ...string) []string { return s },
}

// render writes page name with status. A template failure is a 500 with nothing half-written.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, v view, data any) {
	v.Data = data
	t := c.pages[name]
	var buf bytes.Buffer
	if t == nil {
		c.log.Error("console: no template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.Execute(&buf, v); err != nil {
		c.log.Error("console: render", "page", name, "path", r.URL.Path, "error", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// ago renders an RFC 3339 time as "3m ago" (the time itself goes in the element's title).
func ago(ts string) string {
	if ts == "" {
		return "never"
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return ts
	}
	d := time.Since(t)
	switch {
	case d < -time.Second:
		return "in " + (-d).Round(time.Second).String()
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return d.Round(time.Second).String() + " ago"
	case d < time.Hour:
		return d.Round(time.Minute).String() + " ago"
	case d < 48*time.Hour:
		return d.Round(time.Hour).String() + " ago"
	default:
		return t.UTC().Format("2006-01-02 15:04")
	}
}

func clipText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
