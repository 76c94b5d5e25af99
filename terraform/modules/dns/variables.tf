variable "name" {
  type = string
}

variable "route53_zone_id" {
  description = "Public hosted zone holding api_domain and the regions' public hosts."
  type        = string
}

variable "api_domain" {
  type = string
}

variable "internal_domain" {
  description = "Name of the private zone for node-to-node forwarding."
  type        = string
}

variable "regions" {
  description = "Per Meridian region id: its AWS region, public host and load balancers."
  type = map(object({
    aws_region           = string
    public_host          = string
    alb_dns_name         = string
    alb_zone_id          = string
    internal_lb_dns_name = string
    internal_lb_zone_id  = string
    vpc_id               = string
  }))
}
