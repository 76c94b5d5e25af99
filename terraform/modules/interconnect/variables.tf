variable "name" {
  type = string
}

variable "mode" {
  description = "vpc_peering or transit_gateway (the root creates no link for none)."
  type        = string
  validation {
    condition     = contains(["vpc_peering", "transit_gateway"], var.mode)
    error_message = "mode must be vpc_peering or transit_gateway."
  }
}

variable "a" {
  description = "The side in provider aws.a's region."
  type = object({
    id                             = string
    aws_region                     = string
    vpc_id                         = string
    vpc_cidr                       = string
    route_table_ids                = list(string)
    transit_gateway_id             = string
    transit_gateway_route_table_id = string
  })
}

variable "b" {
  description = "The side in provider aws.b's region."
  type = object({
    id                             = string
    aws_region                     = string
    vpc_id                         = string
    vpc_cidr                       = string
    route_table_ids                = list(string)
    transit_gateway_id             = string
    transit_gateway_route_table_id = string
  })
}
