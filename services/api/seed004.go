package api

import "net/http"

func (s *Service) seed004Routes(mux *http.ServeMux) {}
